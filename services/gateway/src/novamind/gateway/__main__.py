"""``python -m novamind.gateway [serve|migrate]`` (also the ``novamind-gateway`` command)."""

from __future__ import annotations

import argparse
import asyncio

from novamind.core.service import run_service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="novamind-gateway", description="Novamind GraphQL gateway")
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve the API (default) or create/upgrade the audit database",
    )
    args = parser.parse_args(argv)
    if args.command == "migrate":
        from novamind.gateway.adapters.migrate import upgrade_to_head

        asyncio.run(upgrade_to_head())
        return
    from novamind.gateway.app import build_runtime

    run_service(build_runtime)


if __name__ == "__main__":
    main()
