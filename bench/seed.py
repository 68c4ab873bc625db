"""Fill the invitations table fast for the list measurements: one INSERT ... SELECT per batch
over a generated series (SQLite's recursive CTE, PostgreSQL's generate_series), no Python per
row. Test data, not a product path: the links are random digests nobody holds, named
"bulk <n>" with addresses bulk<n>@bench.example.org, so a search can find one of them."""

from __future__ import annotations

from sqlalchemy import bindparam, select, text

from portal.extensions import db
from portal.models import Flow, User, utcnow
from portal.models.types import UTCDateTime

BATCH = 200_000

_SERIES = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) ",
    "postgresql": "",
}
_FROM = {
    "sqlite": "FROM n",
    "postgresql": "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n(i)",
}
_RANDOM_HEX = {
    "sqlite": "lower(hex(randomblob(32)))",
    "postgresql": "md5(random()::text || i::text) || md5(i::text || random()::text)",
}
_SALT = {"sqlite": "lower(hex(randomblob(16)))", "postgresql": "md5(random()::text)"}


def seed_invitations(count: int, *, prefix: str = "bulk") -> None:
    """Add `count` open invitations to the first flow, in its tenant, created by the first user.

    The table's secondary indexes (and SQLite's search triggers) are dropped for the load and
    built again after it: one sorted build each instead of a million random inserts."""
    from portal.invitations.search import FTS_TABLE, create_sqlite_index, forget_fts
    from portal.models import Invitation
    from portal.tenants import default_tenant

    dialect = db.engine.dialect.name
    indexes = list(Invitation.__table__.indexes)
    with db.engine.begin() as connection:
        if dialect == "sqlite":
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
            for name in ("insert", "delete", "update"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {FTS_TABLE}_{name}")
        for index in indexes:
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
    flow_id, tenant_id = db.session.execute(
        select(Flow.id, Flow.tenant_id).order_by(Flow.id).limit(1)).one()
    if tenant_id is None:  # an instance-wide flow: the invitations go to the default tenant
        tenant_id = default_tenant().id
    admin_id = db.session.scalar(select(User.id).order_by(User.id))
    statement = text(
        _SERIES[dialect]
        + "INSERT INTO invitations (name, token_salt, token_digest, expires_at, flow_id, attributes,"
        " single_use, max_uses, use_count, revoked_at, created_by_id, created_at, email, cc, bcc,"
        " message, allowed_domains, tenant_id) "
        + f"SELECT :prefix || ' ' || i, {_SALT[dialect]}, {_RANDOM_HEX[dialect]}, NULL, :flow,"
        " '{}', false, NULL, 0, NULL, :admin, :now,"
        " :prefix || i || '@bench.example.org', '[]', '[]', '', '[]', :tenant "
        + _FROM[dialect]
    ).bindparams(bindparam("now", type_=UTCDateTime))
    if dialect == "sqlite":  # SQLite wants the CTE before INSERT, written as INSERT ... WITH
        statement = text(statement.text.replace(_SERIES["sqlite"], "").replace(
            "SELECT :prefix", _SERIES["sqlite"] + "SELECT :prefix", 1)).bindparams(
            bindparam("now", type_=UTCDateTime))
    now = utcnow()
    for first in range(0, count, BATCH):
        db.session.execute(statement, {"first": first, "last": min(first + BATCH, count) - 1,
                                       "prefix": prefix, "flow": flow_id, "admin": admin_id,
                                       "now": now, "tenant": tenant_id})
        db.session.commit()
    with db.engine.begin() as connection:
        if dialect == "postgresql":
            connection.exec_driver_sql("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            if index._ddl_if is None or index._ddl_if.dialect in (None, dialect):
                index.create(connection)
        if dialect == "sqlite":
            create_sqlite_index(connection)
    forget_fts()
