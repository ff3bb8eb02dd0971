"""``python -m novamind.twin [serve|migrate]`` (also the ``novamind-twin`` command)."""

from __future__ import annotations

import argparse
import asyncio

from novamind.core.service import run_service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="novamind-twin", description="Novamind twin service")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        from novamind.twin.adapters.migrate import upgrade_to_head

        asyncio.run(upgrade_to_head())
        return
    from novamind.twin.app import build_runtime

    run_service(build_runtime)


if __name__ == "__main__":
    main()
