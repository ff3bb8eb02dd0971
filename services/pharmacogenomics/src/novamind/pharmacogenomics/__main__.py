"""``python -m novamind.pharmacogenomics`` (also ``novamind-pharmacogenomics``): run the service."""

from __future__ import annotations

from novamind.core.service import run_service


def main() -> None:
    from novamind.pharmacogenomics.app import build_runtime

    run_service(build_runtime)


if __name__ == "__main__":
    main()
