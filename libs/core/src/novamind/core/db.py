"""The one way a Novamind service opens its database: an async SQLAlchemy engine.

SQLite (the single-machine default, ``sqlite+aiosqlite:///var/twin.db``) gets the parent directory
created and, on every new connection, write-ahead logging (readers do not block the writer),
a busy timeout (a second writer waits instead of failing at once) and enforced foreign keys.

PostgreSQL (``postgresql+asyncpg://...``) gets a bounded pool that checks connections before use
and recycles them, so a database restart or an idle-connection reaper costs one retry, not an
outage. A ``search_path`` query parameter (``...?search_path=twin``) is sent to the server as a
session setting, which puts a service (or a test) in its own schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: How long a SQLite connection waits for another writer's lock before failing (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 5_000

#: PostgreSQL session settings that may be given as URL query parameters.
_SERVER_SETTING_PARAMETERS = ("search_path", "application_name")


def make_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` with Novamind's connection settings.

    Supports ``sqlite+aiosqlite`` and ``postgresql+asyncpg`` URLs (others get SQLAlchemy's
    defaults). Raises :class:`sqlalchemy.exc.ArgumentError` for a malformed URL and
    :class:`OSError` if a SQLite file's directory cannot be created.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed, echo=echo)
    return create_async_engine(parsed, echo=echo)


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _set_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


def _postgres_engine(url: URL, *, echo: bool) -> AsyncEngine:
    server_settings = {name: str(url.query[name]) for name in _SERVER_SETTING_PARAMETERS if name in url.query}
    connect_args: dict[str, Any] = {}
    if server_settings:
        connect_args["server_settings"] = server_settings
        url = url.difference_update_query(server_settings)
    return create_async_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
