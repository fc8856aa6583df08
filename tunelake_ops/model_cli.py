"""``tunelake model``: the model registry for operators (list, show, promote, roll back).

Promotion and rollback move only the registry's ``current`` pointer; running services pick
the change up within ``TUNELAKE_MODEL_REFRESH_SECONDS``, without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunelake.settings import get_settings
from tunelake_ops.jobs import fail

model = typer.Typer(
    help="The recommendation model registry (s3://<models bucket>/als/).", no_args_is_help=True
)
Version = Annotated[str, typer.Argument(help="A version from `tunelake model list`.")]


@contextmanager
def registry_refusals() -> Iterator[None]:
    """A registry error (unknown version, nothing to roll back) ends the command with its
    reason and exit status 1."""
    from ml.registry import RegistryError

    try:
        yield
    except RegistryError as exc:
        raise fail(exc) from None


@model.command("list")
def list_models() -> None:
    """Every trained version, oldest first, with its NDCG@10 and the gate's decision."""
    from ml import registry

    table = Table(title="models")
    table.add_column("version", no_wrap=True)
    table.add_column("trained at")
    table.add_column("ndcg@10", no_wrap=True)
    table.add_column("gate")
    table.add_column("current", no_wrap=True)
    for entry in registry.list_versions(get_settings()):
        gate = entry["gate"]
        ndcg = entry["ndcg@10"]
        table.add_row(
            entry["version"],
            entry["trained_at"],
            "-" if ndcg is None else f"{ndcg:.4f}",
            ("promoted: " if gate["promote"] else "refused: ") + gate["reason"],
            "*" if entry["current"] else "",
        )
    Console().print(table)


@model.command()
def show(version: Version) -> None:
    """A version's record: parameters, metrics beside the baselines, Silver versions, gate."""
    from ml import registry

    with registry_refusals():
        record = registry.show(get_settings(), version)
    Console().print_json(json.dumps(record))


@model.command()
def promote(version: Version) -> None:
    """Make VERSION the served model (also a refused one: the operator's decision)."""
    from ml import registry

    with registry_refusals():
        moved = registry.promote(get_settings(), version)
    previous = moved.previous[0] if moved.previous else "none"
    Console().print(f"current model: {moved.version} (before: {previous})")


@model.command()
def rollback() -> None:
    """Serve the previously promoted version again."""
    from ml import registry

    with registry_refusals():
        restored = registry.rollback(get_settings())
    Console().print(f"current model: {restored.version} (rolled back)")
