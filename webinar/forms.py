"""Forms for broadcasts and their invite lists."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from accounts.models import EMAIL_MAX, NAME_MAX
from classroom.models import DESCRIPTION_MAX
from lectern.forms import duration_field, one_line, start_field
from rooms.models import QUESTION_MAX
from webinar.models import DOMAIN_MAX, HOLDER_ID_MAX, KIND_LABELS, MODE_LABELS, TITLE_MAX

DOMAIN = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class BroadcastForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=TITLE_MAX), one_line])
    description = TextAreaField(_l("Description"), validators=[Length(max=DESCRIPTION_MAX)])
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice(k.value, label) for k, label in KIND_LABELS.items()],
        validators=[DataRequired()],
    )
    registration_mode = SelectField(
        _l("Registration"),
        choices=[SelectChoice(m.value, label) for m, label in MODE_LABELS.items()],
        validators=[DataRequired()],
    )
    starts_at = start_field()
    duration_minutes = duration_field()
    allowed_domain = StringField(
        _l("Only e-mail addresses in this domain (optional, e.g. example.com)"),
        filters=[lambda v: (v or "").strip().lower().lstrip("@") or None],
        validators=[
            Optional(),
            Length(max=DOMAIN_MAX),
            Regexp(DOMAIN, message=_l("Enter a domain such as example.com.")),
        ],
    )


class InviteForm(FlaskForm):
    emails = TextAreaField(
        _l("E-mail addresses to invite (one per line, or separated by commas)"),
        validators=[DataRequired(), Length(max=100_000)],
    )


class CsvInviteForm(FlaskForm):
    file = FileField(_l("CSV file"))  # its columns are in the help above it, by kind
    text = TextAreaField(_l("…or paste the CSV here"), validators=[Length(max=2_000_000)])


class VerifyForm(FlaskForm):
    """First use of a shareholder's join link: the holder id and the code from the invitation."""

    holder_id = StringField(_l("Holder id"), validators=[DataRequired(), Length(max=HOLDER_ID_MAX)])
    code = StringField(
        _l("Verification code"),
        validators=[DataRequired(), Length(max=20)],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )


class ContinueForm(FlaskForm):
    """First use of a join link that needs no verification: one button (never a GET)."""


class SignupForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=NAME_MAX)])
    email = StringField(
        _l("E-mail address"), validators=[DataRequired(), Length(max=EMAIL_MAX), Email()]
    )


class AskAheadForm(FlaskForm):
    text = TextAreaField(_l("Your question"), validators=[DataRequired(), Length(max=QUESTION_MAX)])
    anonymous = BooleanField(_l("Ask anonymously"))
