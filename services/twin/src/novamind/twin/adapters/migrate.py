"""Run the twin's Alembic migrations against the configured database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from novamind.core.crypto import EnvelopeCipher, KeyRing
from novamind.core.db import make_engine
from novamind.twin.config import TwinSettings


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "novamind.twin:migrations")
    return config


async def upgrade_to_head(settings: TwinSettings | None = None, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest).

    Migrations that encrypt existing rows use the configured keys (``NOVAMIND_ENCRYPTION_KEYS``).
    """
    await _run(settings, lambda config: command.upgrade(config, revision))


async def downgrade_to(settings: TwinSettings | None, revision: str) -> None:
    """Take the schema back to ``revision`` (decrypting what a later revision encrypted)."""
    await _run(settings, lambda config: command.downgrade(config, revision))


async def _run(settings: TwinSettings | None, action: object) -> None:
    settings = settings or TwinSettings()
    engine = make_engine(settings.sqlalchemy_url("twin"))
    config = alembic_config()
    config.attributes["cipher"] = EnvelopeCipher(KeyRing.from_settings(settings))
    assert callable(action)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        action(config)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()
