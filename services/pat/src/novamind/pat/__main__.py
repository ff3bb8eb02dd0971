"""``python -m novamind.pat`` (also the ``novamind-pat`` command): the service and its tools."""

from __future__ import annotations

from novamind.pat.cli import main

if __name__ == "__main__":
    main()
