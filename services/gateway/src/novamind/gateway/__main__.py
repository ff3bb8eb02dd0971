"""``python -m novamind.gateway`` (also the ``novamind-gateway`` command): run the gateway."""

from __future__ import annotations

from novamind.core.service import run_service


def main() -> None:
    from novamind.gateway.app import build_runtime

    run_service(build_runtime)


if __name__ == "__main__":
    main()
