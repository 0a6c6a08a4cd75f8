"""Forms for broadcasts and their invite lists."""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from classroom.models import DESCRIPTION_MAX
from lectern.forms import duration_field, start_field
from webinar.models import KIND_LABELS, MODE_LABELS, TITLE_MAX


class BroadcastForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_MAX)])
    description = TextAreaField("Description", validators=[Length(max=DESCRIPTION_MAX)])
    kind = SelectField(
        "Kind",
        choices=[SelectChoice(k.value, label) for k, label in KIND_LABELS.items()],
        validators=[DataRequired()],
    )
    registration_mode = SelectField(
        "Registration",
        choices=[SelectChoice(m.value, label) for m, label in MODE_LABELS.items()],
        validators=[DataRequired()],
    )
    starts_at = start_field()
    duration_minutes = duration_field()


class InviteForm(FlaskForm):
    emails = TextAreaField(
        "E-mail addresses to invite (one per line, or separated by commas)",
        validators=[DataRequired(), Length(max=100_000)],
    )
