"""Run the gateway's Alembic migrations (the audit log's tables) against its database."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from novamind.core.db import make_engine
from novamind.gateway.config import GatewaySettings


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "novamind.gateway:migrations")
    return config


async def upgrade_to_head(settings: GatewaySettings | None = None, revision: str = "head") -> None:
    """Bring the gateway's schema to ``revision`` (default: the newest)."""
    await _run(settings, lambda config: command.upgrade(config, revision))


async def downgrade_to(settings: GatewaySettings | None, revision: str) -> None:
    """Take the gateway's schema back to ``revision`` (``base`` drops the audit tables)."""
    await _run(settings, lambda config: command.downgrade(config, revision))


async def _run(settings: GatewaySettings | None, action: Callable[[Config], None]) -> None:
    settings = settings or GatewaySettings()
    engine = make_engine(settings.sqlalchemy_url("gateway"))
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        action(config)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()
