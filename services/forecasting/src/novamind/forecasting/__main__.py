"""``python -m novamind.forecasting`` (also ``novamind-forecasting``): the service and its tools."""

from __future__ import annotations

from novamind.forecasting.cli import main

if __name__ == "__main__":
    main()
