"""Run the twin's Alembic migrations against the configured database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from novamind.core.db import make_engine
from novamind.twin.config import TwinSettings


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "novamind.twin:migrations")
    return config


async def upgrade_to_head(settings: TwinSettings | None = None, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    settings = settings or TwinSettings()
    engine = make_engine(settings.sqlalchemy_url("twin"))
    config = alembic_config()

    def upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()
