"""``novamind-audit``: operator commands for the hash-chained audit log.

``novamind-audit verify [--database-url URL]`` checks the chain and prints a report. Exit status:
0 the chain is intact, 1 it was tampered with (the report names the first bad seq), 2 the log
could not be read. The default URL is the gateway's database from the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from novamind.core.audit import ChainReport, verify_chain
from novamind.core.config import CoreSettings
from novamind.core.db import make_engine

EXIT_INTACT = 0
EXIT_TAMPERED = 1
EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``novamind-audit`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="novamind-audit", description="Novamind audit log tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify the audit log's hash chain")
    verify.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of the database holding audit_log (default: the gateway's database)",
    )
    args = parser.parse_args(argv)
    url = args.database_url or CoreSettings().sqlalchemy_url("gateway")
    try:
        _check_url(url)
        report = asyncio.run(_verify(url))
    except (SQLAlchemyError, OSError, FileNotFoundError) as exc:
        print(f"novamind-audit: error: cannot read the audit log: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    print(format_report(report))
    return EXIT_INTACT if report.ok else EXIT_TAMPERED


def format_report(report: ChainReport) -> str:
    """The human-readable report ``verify`` prints."""
    if report.ok:
        return f"audit log intact: {report.records} records, hash chain verified"
    where = f"first bad seq {report.first_bad_seq}" if report.first_bad_seq is not None else "head row"
    lines = [f"audit log TAMPERED: {where} ({report.records} records read)"]
    lines += [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)


def _check_url(url: str) -> None:
    """Refuse a malformed URL, and a SQLite file that does not exist (opening it would create it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise FileNotFoundError("the database URL is malformed") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).expanduser().is_file():
            raise FileNotFoundError("the SQLite database file does not exist")


async def _verify(url: str) -> ChainReport:
    engine = make_engine(url)
    try:
        return await verify_chain(engine)
    finally:
        await engine.dispose()


def _describe(exc: BaseException) -> str:
    # The first line of a driver error names the problem ("no such table: audit_log") without
    # the URL; our own messages are written to be shown.
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
