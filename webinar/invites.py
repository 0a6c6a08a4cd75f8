"""Importing an invite list from CSV (name, e-mail, holder id, shares): every bad row is
reported by its line and writes nothing; the good rows are imported and sent their links."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from flask_babel import format_number
from flask_babel import gettext as _
from sqlalchemy import select

from accounts.emails import normalize_email
from accounts.models import NAME_MAX, User
from lectern.extensions import db
from webinar.links import issue
from webinar.models import HOLDER_ID_MAX, Broadcast, Kind, Registration, Status

MAX_ROWS = 10_000
MAX_SHARES = 10**15
# Header spellings accepted for each column (compared lower-case, without spaces, - and _).
COLUMNS = {
    "name": {"name", "fullname"},
    "email": {"email", "emailaddress", "mail"},
    "holder_id": {"holderid", "holder", "shareholderid"},
    "shares": {"shares", "numberofshares", "shareholding"},
}
HOLDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass
class ImportResult:
    """What an import did: rows added, rows skipped (already invited) and rows refused."""

    added: list[tuple[int, Registration, str | None]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason); 0: the file

    @property
    def error_lines(self) -> list[str]:
        return [
            _("Line %(n)s: %(why)s", n=line, why=why) if line else why for line, why in self.errors
        ]


@dataclass(frozen=True)
class Row:
    line: int
    name: str
    email: str
    holder_id: str | None
    shares: int | None


def header_map(header: list[str]) -> dict[str, int] | str:
    """Column name -> index from the header row, or why the header is not usable."""
    found: dict[str, int] = {}
    for index, raw in enumerate(header):
        key = re.sub(r"[\s_\-]", "", raw.strip().lower())
        for column, spellings in COLUMNS.items():
            if key in spellings and column not in found:
                found[column] = index
    if "email" not in found:
        return _(
            "The first line must be a header naming the columns: name, email, holder_id, shares."
        )
    return found


def parse_shares(raw: str) -> int | None:
    """A positive whole number of shares ("1200", "1,200", "1 200"), or None."""
    digits = re.sub(r"[\s,_']", "", raw)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 16:
        return None
    value = int(digits)
    return value if 0 < value <= MAX_SHARES else None


def parse_row(line: int, cells: list[str], columns: dict[str, int], holders: bool) -> Row | str:
    """One data row, or the reason it is refused."""

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    email = normalize_email(cell("email"))
    if email is None:
        shown = cell("email")[:80]
        if shown:
            return _("'%(text)s' is not an e-mail address", text=shown)
        return _("the e-mail address is missing")
    name = cell("name")
    if len(name) > NAME_MAX:
        return _("the name is longer than %(n)s characters", n=NAME_MAX)
    if not holders:
        return Row(line, name, email, None, None)
    holder_id = cell("holder_id")
    if not holder_id:
        return _("the holder id is missing")
    if len(holder_id) > HOLDER_ID_MAX or not HOLDER_ID.match(holder_id):
        return _("the holder id must be letters, digits, '.', '_', '/' or '-' (at most 64)")
    shares = parse_shares(cell("shares"))
    if shares is None:
        return _("shares must be a whole number from 1 to %(max)s", max=format_number(MAX_SHARES))
    return Row(line, name, email, holder_id, shares)


def read_rows(data: bytes, holders: bool, result: ImportResult) -> list[Row]:
    """The file's valid rows; refusals go to ``result.errors`` with their line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.errors.append(
            (0, _("The file is not UTF-8 text: save it as 'CSV UTF-8' and retry."))
        )
        return []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        columns = header_map(header) if header else _("The file is empty.")
        if isinstance(columns, str):
            result.errors.append((0, columns))
            return []
        rows: list[Row] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) + len(result.errors) >= MAX_ROWS:
                result.errors.append(
                    (reader.line_num, _("more than %(n)s rows: the rest", n=MAX_ROWS))
                )
                break
            parsed = parse_row(reader.line_num, cells, columns, holders)
            if isinstance(parsed, str):
                result.errors.append((reader.line_num, parsed))
            else:
                rows.append(parsed)
    except csv.Error as exc:
        result.errors.append(
            (reader.line_num, _("the CSV is malformed here (%(error)s)", error=exc))
        )
    return rows


def import_csv(broadcast: Broadcast, data: bytes) -> ImportResult:
    """Add the file's good rows to the invite list with a new link each; the caller e-mails
    them. Rows naming an e-mail or holder id already used (in the file or the list) are refused
    or skipped with their line."""
    result = ImportResult()
    holders = broadcast.kind == Kind.SHAREHOLDER
    rows = read_rows(data, holders, result)
    existing = {
        r.email: r
        for r in db.session.scalars(
            select(Registration).where(Registration.broadcast_id == broadcast.id)
        )
    }
    # Holder ids are compared without case, as verification compares them.
    holder_emails = {r.holder_id.casefold(): r.email for r in existing.values() if r.holder_id}
    seen: dict[str, int] = {}
    accounts = {
        u.email: u
        for u in db.session.scalars(select(User).where(User.email.in_([r.email for r in rows])))
    }
    for row in rows:
        if row.email in seen:
            result.errors.append((row.line, f"{row.email} is already on line {seen[row.email]}"))
            continue
        seen[row.email] = row.line
        if row.email in existing:
            result.skipped.append(
                (row.line, _("%(email)s is already on the list", email=row.email))
            )
            continue
        holder = row.holder_id.casefold() if row.holder_id else None
        if holder and holder in holder_emails:
            other = holder_emails[holder]
            result.errors.append(
                (
                    row.line,
                    _("holder id %(id)s is already %(name)s's", id=row.holder_id, name=other),
                )
            )
            continue
        if holder:
            holder_emails[holder] = row.email
        account = accounts.get(row.email)
        reg = Registration(
            broadcast_id=broadcast.id,
            email=row.email,
            name=row.name or (account.name if account else ""),
            status=Status.PENDING.value,
            invited=True,
            holder_id=row.holder_id,
            shares=row.shares,
        )
        reg.broadcast = broadcast
        db.session.add(reg)
        db.session.flush()
        result.added.append((row.line, reg, issue(reg)))
    result.errors.sort()
    db.session.commit()
    return result
