"""The e-mails accounts send, each in its recipient's language: welcome (set your password),
course invitation, password reset, sign-up confirmation. The recipient's language is their
account's; without one (an invitation, a sign-up, an account not yet used) it is the language of
the request that sends the mail: the inviting teacher's (a Korean school inviting its students
writes to them in Korean), the person signing up's.

Links are made here from the token that only the e-mail carries.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from accounts.models import User
from lectern.i18n import LANGUAGES, select_locale
from lectern.mail import Delivery, Mail, external_url, send


def mail_language(user: User | None = None) -> str:
    """The language of an e-mail to ``user``: their account's, else the request's (its user's
    profile, else the browser's), else English (outside a request: a command)."""
    if user is not None and user.locale in LANGUAGES:
        return str(user.locale)
    return select_locale()


def _hello(name: str | None) -> str:
    return _("Hello %(name)s,", name=name) if name else _("Hello,")


def welcome_mail(user: User, token: str, inviter: str | None = None) -> Mail:
    """An admin created the account: the link sets its first password (7 days)."""
    with force_locale(mail_language(user)):
        url = external_url("accounts.reset_password", token=token, welcome=1)
        body = [
            _hello(user.name),
            "",
            _("An account on Lectern was created for you (%(email)s).", email=user.email),
            _("Choose your password here within 7 days:"),
            url,
        ]
        return Mail(user.email, _("Your Lectern account"), "\n".join(body))


def reset_mail(user: User, token: str) -> Mail:
    """Forgot password: the link works once, for one hour, until the password changes."""
    with force_locale(mail_language(user)):
        url = external_url("accounts.reset_password", token=token)
        body = [
            _hello(user.name),
            "",
            _(
                "Someone (hopefully you) asked to reset the password of %(email)s.",
                email=user.email,
            ),
            _("Choose a new password here within one hour:"),
            url,
            "",
            _("If it was not you, ignore this e-mail: your password stays as it is."),
        ]
        return Mail(user.email, _("Reset your Lectern password"), "\n".join(body))


def invite_mail(email: str, token: str, course_title: str, teacher: str) -> Mail:
    """A course invitation to an address without an account (7 days, one use), in the inviting
    teacher's language."""
    with force_locale(mail_language()):
        url = external_url("classroom.accept_invitation", token=token)
        body = [
            _hello(None),
            "",
            _(
                "%(teacher)s invited you to the course %(course)s on Lectern.",
                teacher=teacher,
                course=course_title,
            ),
            _("Choose your password here within 7 days to join:"),
            url,
        ]
        return Mail(email, _("Invitation: %(course)s", course=course_title), "\n".join(body))


def signup_mail(email: str, name: str, token: str) -> Mail:
    """Self sign-up: confirm the address, then choose a password (24 hours), in the language of
    the page they signed up on."""
    with force_locale(mail_language()):
        url = external_url("accounts.signup_confirm", token=token)
        body = [
            _hello(name),
            "",
            _("To finish creating your Lectern account, open this link within 24 hours:"),
            url,
            "",
            _("If you did not sign up, ignore this e-mail."),
        ]
        return Mail(email, _("Confirm your Lectern account"), "\n".join(body))


def send_now(mail: Mail) -> Delivery:
    return send([mail])


def send_all(mails: list[Mail]) -> Delivery:
    return send(mails)


def send_later(mail: Mail) -> threading.Thread:
    """Send in the background, so the response does not wait for the mail server: a page
    that must not reveal whether an address has an account answers as fast either way."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            send([mail])

    thread = threading.Thread(target=run, name="mail", daemon=True)
    thread.start()
    return thread
