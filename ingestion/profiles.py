"""PostgreSQL ``user_profiles``: its migrations and the writes `tunelake users` makes.

Debezium captures every committed change of the table into the ``user_profiles`` topic
(``ingestion/cdc.py``); Silver's ``dim_user`` is built from it. Migrations are the numbered
SQL files in ``ingestion/migrations``, applied once each, in order, in one transaction
each, and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources

from tunelake.clients import postgres_connect
from tunelake.settings import Settings

log = logging.getLogger(__name__)

PUBLICATION = "tunelake_user_profiles"
TABLE = "public.user_profiles"
# Columns a `tunelake users update` may set (user_id is the key; signup_time is history).
PROFILE_FIELDS = ("display_name", "country", "birth_year", "preferences")


class UserProfileError(RuntimeError):
    """A profile write that PostgreSQL refused or that found no user."""


def migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def migrate(settings: Settings) -> list[str]:
    """Apply the migrations the database has not had yet; returns their versions."""
    applied = []
    with postgres_connect(settings) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migrations():
            with conn.transaction():
                # Two `up`s at once: the second waits here, then sees the version applied.
                conn.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                ).fetchone()
                if done:
                    continue
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
    if applied:
        log.info("user_profiles: applied migrations %s", ", ".join(applied))
    return applied


@dataclass(frozen=True)
class ProfileChange:
    """The fields a write sets; None leaves a field as it is (on update) or unset."""

    display_name: str | None = None
    country: str | None = None
    birth_year: int | None = None
    preferences: dict | None = field(default=None)

    def columns(self) -> dict[str, object]:
        values = {name: getattr(self, name) for name in PROFILE_FIELDS}
        if values["preferences"] is not None:
            values["preferences"] = json.dumps(values["preferences"])
        return {name: value for name, value in values.items() if value is not None}


def _execute(settings: Settings, sql: str, params: tuple) -> int:
    import psycopg

    try:
        with postgres_connect(settings) as conn:
            return conn.execute(sql, params).rowcount
    except psycopg.errors.IntegrityError as exc:
        raise UserProfileError(str(exc).splitlines()[0]) from None


def _insert(settings: Settings, user_id: str, change: ProfileChange, *, upsert: bool) -> None:
    columns = {"user_id": user_id, "display_name": user_id, **change.columns()}
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {TABLE} ({names}) VALUES ({marks})"
    if upsert:
        updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name != "user_id")
        sql += f" ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = now()"
    _execute(settings, sql, tuple(columns.values()))


def add_user(settings: Settings, user_id: str, change: ProfileChange) -> None:
    _insert(settings, user_id, change, upsert=False)


def upsert_user(settings: Settings, user_id: str, change: ProfileChange) -> None:
    """Create the profile, or set these fields of the existing one (re-runs of the demo)."""
    _insert(settings, user_id, change, upsert=True)


def update_user(settings: Settings, user_id: str, change: ProfileChange) -> None:
    columns = change.columns()
    if not columns:
        raise UserProfileError("nothing to update: name at least one field")
    assignments = ", ".join(f"{name} = %s" for name in columns)
    updated = _execute(
        settings,
        f"UPDATE {TABLE} SET {assignments}, updated_at = now() WHERE user_id = %s",
        (*columns.values(), user_id),
    )
    if not updated:
        raise UserProfileError(f"no user {user_id!r} in {TABLE}")


def delete_user(settings: Settings, user_id: str) -> None:
    """Delete the profile; Silver's privacy job then removes the user's rows everywhere."""
    deleted = _execute(settings, f"DELETE FROM {TABLE} WHERE user_id = %s", (user_id,))
    if not deleted:
        raise UserProfileError(f"no user {user_id!r} in {TABLE}")
