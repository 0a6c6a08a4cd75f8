"""Automatic reminders: every registrant of a broadcast that starts within ``REMINDER_MINUTES``
gets one reminder e-mail with their join link, sent once even with several web workers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import click
from flask import Flask
from flask_socketio import SocketIO
from sqlalchemy import or_, select, update

from lectern.extensions import db
from lectern.timeutil import utcnow
from webinar import bp
from webinar.models import Broadcast, Registration, Status
from webinar.notify import send_reminders

CHECK_INTERVAL_S = 60.0
log = logging.getLogger(__name__)


def remindable(broadcast: Broadcast) -> list[Registration]:
    """Approved registrants and invitees whose link still works."""
    return [
        r
        for r in broadcast.registrations
        if (r.status == Status.APPROVED or (r.status == Status.PENDING and r.invited))
        and not r.link_revoked
    ]


def claim(broadcast_id: int, now: datetime, before: datetime) -> bool:
    """Mark the broadcast reminded unless it was since ``before``; False when another worker
    did it first."""
    result = db.session.execute(
        update(Broadcast)
        .where(
            Broadcast.id == broadcast_id,
            or_(Broadcast.reminded_at.is_(None), Broadcast.reminded_at < before),
        )
        .values(reminded_at=now)
    )
    db.session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def send_due(lead: timedelta, now: datetime | None = None) -> int:
    """Remind the registrants of every broadcast starting within ``lead`` that was not reminded
    within that window (a host's earlier manual reminder does not count); returns how many
    e-mails went out."""
    now = now or utcnow()
    due = db.session.execute(
        select(Broadcast.id, Broadcast.starts_at).where(
            Broadcast.starts_at > now, Broadcast.starts_at <= now + lead
        )
    ).all()
    sent = 0
    for broadcast_id, starts_at in due:
        if not claim(broadcast_id, now, starts_at - lead):
            continue
        broadcast = db.session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        _, delivery = send_reminders(remindable(broadcast))
        db.session.commit()  # links issued for the reminder
        sent += delivery.sent
        # Refused addresses are logged, not retried: a retry would mail everyone else again.
        if delivery.sent == 0 and delivery.failed:  # the server took nothing: next round
            broadcast.reminded_at = starts_at - lead - timedelta(seconds=1)
            db.session.commit()
    return sent


def start(app: Flask, socketio: SocketIO) -> None:
    """Check for due reminders every minute in the background (``REMINDER_MINUTES`` 0: never)."""
    minutes = app.config["REMINDER_MINUTES"]
    if minutes <= 0:
        return

    def loop() -> None:
        while True:
            socketio.sleep(CHECK_INTERVAL_S)
            with app.app_context():
                try:
                    send_due(timedelta(minutes=minutes))
                except Exception:
                    log.exception("sending reminders failed")
                finally:
                    db.session.remove()

    socketio.start_background_task(loop)


@bp.cli.command("remind")
@click.option("--minutes", type=int, default=None, help="Lead time (default REMINDER_MINUTES).")
def remind_command(minutes: int | None) -> None:
    """Send the reminders that are due now (for a cron job instead of the background task)."""
    from flask import current_app

    lead = minutes if minutes is not None else current_app.config["REMINDER_MINUTES"]
    click.echo(f"{send_due(timedelta(minutes=lead))} reminder(s) sent.")
