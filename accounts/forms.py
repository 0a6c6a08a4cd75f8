"""Forms of the account pages: sign-in, passwords, profile, sign-up and the admin's."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    InputRequired,
    Length,
    Optional,
    ValidationError,
)

from accounts.models import EMAIL_MAX, NAME_MAX
from accounts.roles import ROLES
from accounts.users import PASSWORD_MAX, PASSWORD_MIN
from lectern.i18n import LANGUAGES, ROLE_LABELS, timezone_names, valid_timezone


def email_field(label: str = "E-mail") -> EmailField:
    return EmailField(
        _l(label),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX)],
    )


def name_field() -> StringField:
    return StringField(_l("Name"), validators=[DataRequired(), Length(max=NAME_MAX)])


def new_password_fields() -> tuple[PasswordField, PasswordField]:
    """A new password and its repetition."""
    return (
        PasswordField(
            _l("New password"),
            validators=[InputRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)],
        ),
        PasswordField(
            _l("Repeat the new password"),
            validators=[InputRequired(), EqualTo("password", _l("The passwords differ."))],
        ),
    )


def a_timezone(form: FlaskForm, field: StringField) -> None:
    if field.data and not valid_timezone(field.data):
        raise ValidationError(_l("Choose a time zone from the list."))


class LoginForm(FlaskForm):
    """E-mail and password; ``tz`` is the browser's time zone, filled in by a script."""

    email = email_field()
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    tz = HiddenField(validators=[Optional(), Length(max=64)])


class SetPasswordForm(FlaskForm):
    """Choose a password (reset, welcome, invitation); ``name`` is used where the account is
    created by the form (first admin, invitation, sign-up)."""

    password, confirm = new_password_fields()


class NewAccountForm(SetPasswordForm):
    name = name_field()


class FirstAdminForm(NewAccountForm):
    email = email_field()


class ChangePasswordForm(FlaskForm):
    current = PasswordField(
        _l("Current password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)]
    )
    password, confirm = new_password_fields()


class ForgotForm(FlaskForm):
    email = email_field()


class SignupForm(FlaskForm):
    email = email_field()
    name = name_field()


class ProfileForm(FlaskForm):
    name = name_field()
    timezone = SelectField(_l("Time zone"), validators=[Optional(), a_timezone])
    locale = SelectField(_l("Language"), validators=[Optional()])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.choices = [("", _l("(not set: UTC)")), *((z, z) for z in timezone_names())]
        self.locale.choices = [("", _l("(the browser's)")), *LANGUAGES.items()]


class NewUserForm(FlaskForm):
    """An admin creates an account; the person gets a 'set your password' e-mail."""

    email = email_field()
    name = name_field()
    role = SelectField(_l("Role"), choices=[(r, ROLE_LABELS[r]) for r in ROLES], default="student")


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[(r, ROLE_LABELS[r]) for r in ROLES])
