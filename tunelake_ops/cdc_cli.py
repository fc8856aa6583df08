"""``tunelake cdc``: the capture of PostgreSQL ``user_profiles`` outside the local stack.

``tunelake up`` does this itself (the postgres and connect services' bootstraps). Compose
runs ``tunelake cdc apply`` as its one-shot ``cdc-init``; the Helm chart runs
``tunelake cdc migrate`` as a post-install/post-upgrade hook and leaves the connector to
Strimzi (its KafkaConnector carries ``ingestion.cdc.connector_config``). ``status`` is for
people and scripts: it exits 1 unless the connector and its task run.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tunelake.settings import get_settings
from tunelake_ops.jobs import fail

cdc = typer.Typer(
    help="Debezium CDC of PostgreSQL user_profiles on Kafka Connect.", no_args_is_help=True
)
console = Console()


def _migrate() -> None:
    from ingestion.profiles import migrate

    applied = migrate(get_settings())
    console.print(f"migrations applied: {', '.join(applied) or 'none due'}")


def _print_status(status: dict) -> None:
    connector = status["connector"]
    console.print(f"connector {status['name']}: {connector['state']} on {connector['worker_id']}")
    for task in status["tasks"]:
        console.print(f"  task {task['id']}: {task['state']} on {task['worker_id']}")


def _unreachable(exc: Exception) -> typer.Exit:
    return fail(RuntimeError(f"Kafka Connect at {get_settings().kafka_connect_url}: {exc}"))


@cdc.command("migrate")
def migrate() -> None:
    """Apply the user_profiles migrations PostgreSQL has not had (table, publication)."""
    _migrate()


@cdc.command("apply")
def apply(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the connector's task to run.")
    ] = 120.0,
) -> None:
    """Migrate, create or update the connector to this config, and wait until it runs."""
    import httpx

    from ingestion.cdc import ConnectError, apply_connector, wait_running

    _migrate()
    settings = get_settings()
    try:
        apply_connector(settings)
        status = wait_running(settings, timeout_s=timeout)
    except ConnectError as exc:
        raise fail(exc) from None
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    _print_status(status)


@cdc.command("status")
def status() -> None:
    """The connector's and its tasks' states; exit status 1 unless all run."""
    import httpx

    from ingestion.cdc import connector_status, is_running

    settings = get_settings()
    try:
        current = connector_status(settings)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if current is None:
        raise fail(RuntimeError(f"no connector {settings.cdc_connector_name}"))
    _print_status(current)
    if not is_running(current):
        raise typer.Exit(code=1)
