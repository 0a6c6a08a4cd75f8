"""Forms for the owner's actions on a recording."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Regexp

TITLE_MAX = 200  # Recording.title's length


class RenameForm(FlaskForm):
    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(),
            Length(max=TITLE_MAX),
            Regexp(r"^[^\x00-\x1f\x7f]*$", message=_l("A title is one line of text.")),
        ],
    )


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token (delete, share, stop sharing)."""
