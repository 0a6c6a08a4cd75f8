"""Flask extensions, created unbound and bound to an app in :func:`lectern.create_app`."""

import sqlite3
from typing import Any

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base shared by every package's models."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login = LoginManager()
csrf = CSRFProtect()
socketio = SocketIO()


@event.listens_for(Engine, "connect")
def tune_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite: write-ahead log (readers never wait for a writer) and fewer fsyncs per commit,
    so a commit stalls the web worker's event loop as briefly as possible."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
