"""Form fields shared by the course and broadcast forms."""

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, Field, IntegerField
from wtforms.form import BaseForm
from wtforms.validators import DataRequired, NumberRange, ValidationError

from lectern.timefmt import request_zone
from lectern.timeutil import NonexistentTime, to_local, to_utc, zone_name

MAX_DURATION_MINUTES = 24 * 60


def happens_locally(form: BaseForm, field: Field) -> None:
    """A validator: the wall-clock time exists in the user's zone (the clocks do not skip it
    when summer time starts). A time they pass twice is fine: :func:`start_utc` takes the first."""
    if field.data is None:
        return
    try:
        to_utc(field.data, request_zone())
    except NonexistentTime:
        raise ValidationError(
            _(
                "%(time)s does not exist in %(zone)s: the clocks skip that hour when summer "
                "time starts. Choose another time.",
                time=field.data.strftime("%Y-%m-%d %H:%M"),
                zone=zone_name(request_zone()),
            )
        ) from None


def start_field() -> DateTimeLocalField:
    """A start time from an ``<input type=datetime-local>``, on the user's wall clock (their
    profile's zone); :func:`start_utc` gives it as stored."""
    return DateTimeLocalField(
        _l("Starts at"), format="%Y-%m-%dT%H:%M", validators=[DataRequired(), happens_locally]
    )


def start_utc(field: Field) -> datetime:
    """A validated start field's time as naive UTC, for storing."""
    return to_utc(field.data, request_zone())


def show_start(field: Field, stored: datetime) -> None:
    """Fill a start field with a stored (UTC) time on the user's wall clock, for editing."""
    field.data = to_local(stored, request_zone())


def duration_field() -> IntegerField:
    """A duration in minutes, 5 minutes to 24 hours."""
    return IntegerField(
        _l("Duration (minutes)"),
        default=60,
        validators=[DataRequired(), NumberRange(min=5, max=MAX_DURATION_MINUTES)],
    )


def one_line(form: BaseForm, field: Field) -> None:
    """A validator: the text has no line breaks or other control characters (it becomes an
    e-mail subject and a calendar entry)."""
    if any(not c.isprintable() for c in field.data or ""):
        raise ValidationError(
            _l("Use one line of text, without line breaks or control characters.")
        )


class ScheduleForm(FlaskForm):
    """Moving a lesson or a broadcast: its start (on the user's wall clock) and duration."""

    starts_at = start_field()
    duration_minutes = duration_field()
