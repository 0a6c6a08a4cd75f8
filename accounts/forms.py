"""Forms for signing in."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from accounts.models import EMAIL_MAX


class LoginForm(FlaskForm):
    """E-mail and password."""

    email = EmailField(
        "E-mail",
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=EMAIL_MAX)],
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
