"""``python -m novamind.twin [serve|migrate|rotate-keys]`` (also the ``novamind-twin`` command)."""

from __future__ import annotations

import argparse
import asyncio

from novamind.core.service import run_service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="novamind-twin", description="Novamind twin service")
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "migrate", "rotate-keys"],
        default="serve",
        help="serve (default); migrate: bring the database schema up to date; "
        "rotate-keys: re-wrap stored data under NOVAMIND_ENCRYPTION_ACTIVE_KEY",
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="rows per transaction for rotate-keys (default 500)"
    )
    args = parser.parse_args(argv)
    if args.command == "migrate":
        from novamind.twin.adapters.migrate import upgrade_to_head

        asyncio.run(upgrade_to_head())
        return 0
    if args.command == "rotate-keys":
        return asyncio.run(_rotate_keys(args.batch_size))
    from novamind.twin.app import build_runtime

    run_service(build_runtime)
    return 0


async def _rotate_keys(batch_size: int) -> int:
    from novamind.core.crypto import EnvelopeCipher, KeyRing
    from novamind.core.db import make_engine
    from novamind.core.errors import NovamindError
    from novamind.twin.adapters.rotation import rotate_keys
    from novamind.twin.config import TwinSettings

    settings = TwinSettings()
    cipher = EnvelopeCipher(KeyRing.from_settings(settings))
    engine = make_engine(settings.sqlalchemy_url("twin"))
    try:
        counts = await rotate_keys(engine, cipher, batch_size=batch_size)
    except NovamindError as exc:
        print(f"key rotation stopped: {exc}")
        return 2
    finally:
        await engine.dispose()
    for table, count in counts.items():
        print(f"{table}: {count} re-wrapped")
    print(f"total: {sum(counts.values())} re-wrapped under key {cipher.keyring.active_key_id!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
