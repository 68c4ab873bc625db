"""Bulk invitations: parse pasted addresses or a CSV, preview each row's problem, create the rest.

No HTTP here: the view hands over text (an upload is decoded first) and the shared options.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from email.utils import parseaddr

from sqlalchemy import func, select

from ..extensions import db
from ..models import Group, Invitation
from .attributes import parse_attributes
from .service import (
    MEMBER,
    InvitationStatus,
    _status_clause,
    account_notes,
    create_invitation,
    queue_invitation_email,
    record_created,
)

MAX_ROWS = 5000
COLUMNS = ("email", "name", "groups", "attributes")


class UploadRejected(ValueError):
    """The whole upload is unusable; the message names the line and the reason."""


@dataclass
class Row:
    line: int
    email: str
    name: str = ""
    groups: list[str] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    problem: str = ""
    note: str = ""  # shown, not a problem: "has an account" (to admins who may see accounts)
    group_objects: list[Group] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


def parse(text: str) -> list[Row]:
    """Rows from a CSV with a header naming `email`, or from one address per line."""
    text = (text or "").lstrip("\ufeff")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    header = [h.strip().lower() for h in next(csv.reader([first]), [])] if first else []
    rows = _parse_csv(text, header) if "email" in header else _parse_lines(lines)
    if len(rows) > MAX_ROWS:
        raise UploadRejected(f"Line {rows[MAX_ROWS].line}: more than {MAX_ROWS} rows; split the file.")
    return rows


def _parse_lines(lines: list[str]) -> list[Row]:
    rows = []
    for number, raw in enumerate(lines, start=1):
        for part in raw.split(","):  # "a@x, b@y" on one line works too
            part = part.strip()
            if part:
                name, address = parseaddr(part)
                rows.append(Row(line=number, email=address or part, name=name))
    return rows


def _parse_csv(text: str, header: list[str]) -> list[Row]:
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        raise UploadRejected(f"Line 1: unknown column {unknown[0]!r}; the columns are "
                             f"{', '.join(COLUMNS)}.")
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        next(reader)
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header):
                raise UploadRejected(f"Line {reader.line_num}: {len(values)} cells but the header "
                                     f"has {len(header)} columns.")
            cells = dict(zip(header, (v.strip() for v in values), strict=False))
            row = Row(line=reader.line_num, email=cells.get("email", ""), name=cells.get("name", ""),
                      groups=[g.strip() for g in cells.get("groups", "").replace("|", ";").split(";")
                              if g.strip()])
            try:
                row.attributes = parse_attributes(cells.get("attributes", ""))
            except ValueError as exc:
                row.problem = f"Bad attributes: {exc}"
            rows.append(row)
    except csv.Error as exc:
        raise UploadRejected(f"Line {reader.line_num}: {exc}.") from None
    return rows


HAS_ACCOUNT = "Has an account: will be asked to join"
IS_MEMBER = "Already a member of this tenant: will be asked to join"


def check(rows: list[Row], *, flow_id: int, assignable: list[Group], viewer=None) -> list[Row]:
    """Fill each row's problem: bad address, duplicate, already invited, group.

    An address that already has an account is invited like any other (its owner accepts with
    that account); its row says so when the admin (`viewer`, their grants) may learn it
    (service.account_notes)."""
    from ..admin.forms import normalise_address

    groups = {g.name.lower(): g for g in assignable}
    seen: dict[str, int] = {}
    for row in rows:
        if row.problem:
            continue
        try:
            row.email = normalise_address(row.email)
        except ValueError as exc:
            row.problem = f"Bad address: {exc}"
            continue
        key = row.email.lower()
        if key in seen:
            row.problem = f"Duplicate of line {seen[key]}"
            continue
        seen[key] = row.line
        missing = [g for g in row.groups if g.lower() not in groups]
        if missing:
            row.problem = f"Unknown group (or not yours to give): {missing[0]}"
            continue
        row.group_objects = [groups[g.lower()] for g in row.groups]
    addresses = list(seen)
    notes = {a.lower(): n for a, n in account_notes(addresses, viewer).items()} if viewer else {}
    invited = _existing(
        select(func.lower(Invitation.email)).where(
            func.lower(Invitation.email).in_(addresses), Invitation.flow_id == flow_id,
            _status_clause(InvitationStatus.VALID, _now()),
        )
    )
    for row in rows:
        if row.problem:
            continue
        if row.email.lower() in invited:
            row.problem = "Already has a pending invitation"
        elif row.email.lower() in notes:
            row.note = IS_MEMBER if notes[row.email.lower()] == MEMBER else HAS_ACCOUNT
    return rows


def _existing(query) -> set[str]:
    """The values a query finds (at most MAX_ROWS parameters: within every database's cap)."""
    return set(db.session.scalars(query))


def _now():
    from ..models import utcnow

    return utcnow()


def create(rows: list[Row], *, base_url: str, email: bool, created_by, ip, **options) -> list[Invitation]:
    """Create one recipient-bound invitation (and its email) per valid row, in one transaction."""
    shared_groups = list(options.pop("groups", ()))
    invitations = []
    for row in rows:
        if not row.ok:
            continue
        groups = shared_groups + [g for g in row.group_objects if g not in shared_groups]
        invitation = create_invitation(name=(row.name or row.email)[:255], email=row.email,
                                       attributes=row.attributes, groups=groups,
                                       created_by=created_by, ip=ip, commit=False, audit=False,
                                       **options)
        invitations.append(invitation)
    db.session.flush()  # one flush for every row, then the audit events point at their ids
    for invitation in invitations:
        record_created(invitation, ip=ip)
    if email:
        for invitation in invitations:
            queue_invitation_email(invitation, base_url)
    db.session.commit()
    return invitations
