"""Render settings as shell assignments: ``eval "$(tunelake env)"`` points tools at the stack."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import SecretStr

from tunelake.settings import Settings


def _plain(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return str(value)
    return str(getattr(value, "value", value))


def shell_assignments(settings: Settings, *, show_secrets: bool = False) -> list[str]:
    """``export NAME=value`` lines for every setting plus the standard AWS_* and PG* names.

    Secrets are left out (as a comment naming them) unless ``show_secrets``, so evaluating
    the default output never overwrites a secret already in the environment.
    """
    entries: list[tuple[str, object]] = [
        (f"TUNELAKE_{name.upper()}", getattr(settings, name))
        for name in type(settings).model_fields
    ]
    entries += [
        ("AWS_ENDPOINT_URL", settings.s3_endpoint_url),
        ("AWS_REGION", settings.s3_region),
        ("AWS_ACCESS_KEY_ID", settings.s3_access_key),
        ("AWS_SECRET_ACCESS_KEY", settings.s3_secret_key),
        ("PGHOST", settings.postgres_host),
        ("PGPORT", settings.postgres_port),
        ("PGUSER", settings.postgres_user),
        ("PGPASSWORD", settings.postgres_password),
        ("PGDATABASE", settings.postgres_db),
    ]
    lines = []
    for name, value in entries:
        if isinstance(value, SecretStr) and not show_secrets:
            lines.append(f"# {name}=<hidden; add --show-secrets>")
        else:
            lines.append(f"export {name}={shlex.quote(_plain(value))}")
    return lines
