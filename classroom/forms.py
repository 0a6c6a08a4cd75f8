"""Forms for courses, enrolment and lessons."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from classroom.models import DESCRIPTION_MAX, TITLE_MAX
from lectern.forms import duration_field, start_field


class CourseForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=TITLE_MAX)])
    description = TextAreaField(_l("Description"), validators=[Length(max=DESCRIPTION_MAX)])


class EnrollForm(FlaskForm):
    emails = TextAreaField(
        _l("Students' e-mail addresses (one per line, or separated by commas)"),
        validators=[DataRequired(), Length(max=100_000)],
    )
    # "preview": show what would happen; "apply": do it (the preview's confirm button)
    step = HiddenField(validators=[Optional(), AnyOf(["preview", "apply"])])


class LessonForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=TITLE_MAX)])
    starts_at = start_field()
    duration_minutes = duration_field()
