"""``tunelake users``: write user profiles in PostgreSQL, the source Debezium captures.

Each command is one committed change of ``user_profiles``; it reaches the ``user_profiles``
topic within seconds and ``dim_user`` at the next ``user_profiles`` DAG run (or
``tunelake dim-user``). ``delete`` is the privacy delete's trigger.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from tunelake.settings import get_settings
from tunelake_ops.jobs import fail

users = typer.Typer(
    help="User profiles in PostgreSQL (captured by Debezium).", no_args_is_help=True
)
UserId = Annotated[str, typer.Argument(help="The user's id, as events carry it.")]
DisplayName = Annotated[str | None, typer.Option("--name", help="Display name.")]
Country = Annotated[str | None, typer.Option(help="ISO 3166 alpha-2 code, e.g. DE.")]
BirthYear = Annotated[int | None, typer.Option(help="e.g. 1990.")]
Preferences = Annotated[
    str | None, typer.Option(help='A JSON object, e.g. \'{"genres": ["jazz"]}\'.')
]


def _change(name: str | None, country: str | None, birth_year: int | None, prefs: str | None):
    from ingestion.profiles import ProfileChange

    try:
        preferences = json.loads(prefs) if prefs is not None else None
    except json.JSONDecodeError as exc:
        raise fail(ValueError(f"--preferences is not JSON: {exc}")) from None
    if preferences is not None and not isinstance(preferences, dict):
        raise fail(ValueError("--preferences must be a JSON object"))
    return ProfileChange(name, country, birth_year, preferences)


def _write(action, *args) -> None:
    from ingestion.profiles import UserProfileError

    try:
        action(get_settings(), *args)
    except UserProfileError as exc:
        raise fail(exc) from None


@users.command("add")
def add(
    user_id: UserId,
    name: DisplayName = None,
    country: Country = None,
    birth_year: BirthYear = None,
    preferences: Preferences = None,
) -> None:
    """Create a profile (display name defaults to the id)."""
    from ingestion.profiles import add_user

    _write(add_user, user_id, _change(name, country, birth_year, preferences))
    Console().print(f"added user {user_id}")


@users.command("update")
def update(
    user_id: UserId,
    name: DisplayName = None,
    country: Country = None,
    birth_year: BirthYear = None,
    preferences: Preferences = None,
) -> None:
    """Change the fields given; the others keep their values."""
    from ingestion.profiles import update_user

    _write(update_user, user_id, _change(name, country, birth_year, preferences))
    Console().print(f"updated user {user_id}")


@users.command("delete")
def delete(user_id: UserId) -> None:
    """Delete the profile: the privacy job then removes the user's rows from Silver."""
    from ingestion.profiles import delete_user

    _write(delete_user, user_id)
    Console().print(f"deleted user {user_id}")
