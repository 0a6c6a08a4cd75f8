"""Form fields shared by the course and broadcast forms."""

from wtforms import DateTimeLocalField, Field, IntegerField
from wtforms.form import BaseForm
from wtforms.validators import DataRequired, NumberRange, ValidationError

MAX_DURATION_MINUTES = 24 * 60


def start_field() -> DateTimeLocalField:
    """A start time (UTC) from an ``<input type=datetime-local>``."""
    return DateTimeLocalField(
        "Starts at (UTC)", format="%Y-%m-%dT%H:%M", validators=[DataRequired()]
    )


def duration_field() -> IntegerField:
    """A duration in minutes, 5 minutes to 24 hours."""
    return IntegerField(
        "Duration (minutes)",
        default=60,
        validators=[DataRequired(), NumberRange(min=5, max=MAX_DURATION_MINUTES)],
    )


def one_line(form: BaseForm, field: Field) -> None:
    """A validator: the text has no line breaks or other control characters (it becomes an
    e-mail subject and a calendar entry)."""
    if any(not c.isprintable() for c in field.data or ""):
        raise ValidationError("Use one line of text, without line breaks or control characters.")
