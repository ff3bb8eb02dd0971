"""``python -m novamind.correlation`` (also the ``novamind-correlation`` command): run the service."""

from __future__ import annotations

from novamind.core.service import run_service


def main() -> None:
    from novamind.correlation.app import build_runtime

    run_service(build_runtime)


if __name__ == "__main__":
    main()
