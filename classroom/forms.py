"""Forms for courses, enrolment and lessons."""

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from classroom.models import DESCRIPTION_MAX, TITLE_MAX
from lectern.forms import duration_field, start_field


class CourseForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_MAX)])
    description = TextAreaField("Description", validators=[Length(max=DESCRIPTION_MAX)])


class EnrollForm(FlaskForm):
    emails = TextAreaField(
        "Students' e-mail addresses (one per line, or separated by commas)",
        validators=[DataRequired(), Length(max=100_000)],
    )


class LessonForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_MAX)])
    starts_at = start_field()
    duration_minutes = duration_field()
