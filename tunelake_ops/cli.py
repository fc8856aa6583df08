"""The ``tunelake`` command: the local stack's lifecycle and the platform's jobs."""

from __future__ import annotations

import subprocess
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunelake.logs import configure_logging
from tunelake.settings import get_settings
from tunelake_ops.cdc_cli import cdc
from tunelake_ops.import_cli import importer
from tunelake_ops.jobs import FromDate, ToDate, date_range, fail, jobs
from tunelake_ops.model_cli import model
from tunelake_ops.users_cli import users

app = typer.Typer(
    help="tunelake: a music-recommendation lakehouse.", no_args_is_help=True, add_completion=False
)
# The platform's jobs (bronze, silver, ...) are commands of the CLI too.
app.add_typer(jobs)
app.add_typer(model, name="model")
app.add_typer(users, name="users")
app.add_typer(cdc, name="cdc")
app.add_typer(importer, name="import")
console = Console(stderr=True)


def _progress(service: str, message: str) -> None:
    console.print(f"[bold]{service:>9}[/] {message}")


def _fail(exc: Exception) -> typer.Exit:
    from tunelake_ops.stack.manager import StackError

    failed = fail(exc)
    if isinstance(exc, StackError) and exc.log_tail:
        console.print(f"[dim]--- last lines of the {exc.service} log ---[/]")
        console.print(exc.log_tail, markup=False, highlight=False)
    return failed


@app.command()
def install(
    browser: Annotated[bool, typer.Option("--browser", help="Also Chromium (UI tests).")] = False,
) -> None:
    """Install what the stack needs (Maven jars, registry distribution, PostgreSQL)."""
    from tunelake_ops.stack.install import InstallError, chromium, install_all

    try:
        install_all(get_settings())
        if browser:
            chromium()
    except InstallError as exc:
        raise _fail(exc) from exc
    console.print("installed")


@app.command()
def up(
    services: Annotated[
        list[str] | None, typer.Argument(help="Only these (and their deps).")
    ] = None,
) -> None:
    """Start the local stack (installing what is missing) and wait until it is healthy."""
    from tunelake_ops.stack.manager import StackError
    from tunelake_ops.stack.manager import up as stack_up

    began = time.monotonic()
    try:
        outcomes = stack_up(get_settings(), services, progress=_progress)
    except StackError as exc:
        raise _fail(exc) from exc
    started = [o.service for o in outcomes if o.action == "started"]
    console.print(
        f"stack up in {time.monotonic() - began:.1f}s; "
        f"started: {', '.join(started) if started else 'nothing (all running)'}"
    )


@app.command()
def down() -> None:
    """Stop every process `up` started, and nothing else."""
    from tunelake_ops.stack.manager import down as stack_down

    stopped = stack_down(get_settings(), progress=_progress)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status() -> None:
    """Show each service's pid, port, health and the process it really is."""
    from tunelake_ops.stack.manager import status as stack_status

    rows = stack_status(get_settings())
    table = Table("service", "pid", "port", "health", "process")
    for row in rows:
        colour = {"healthy": "green", "unhealthy": "yellow"}.get(row.health, "red")
        table.add_row(
            row.service,
            str(row.pid or "-"),
            str(row.port or "-"),
            f"[{colour}]{row.health}[/]",
            row.process,
        )
    Console().print(table)
    if any(row.health != "healthy" for row in rows):
        raise typer.Exit(code=1)


@app.command()
def logs(
    service: str,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 100,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Print the tail of SERVICE's log (kafka, s3, postgres, registry)."""
    from tunelake_ops.stack.manager import StackError, log_path

    try:
        path = log_path(get_settings(), service)
    except StackError as exc:
        raise _fail(exc) from exc
    if not path.is_file():
        raise _fail(FileNotFoundError(f"no log yet for {service} at {path}"))
    command = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    raise typer.Exit(code=subprocess.call(command))


@app.command()
def env(
    show_secrets: Annotated[bool, typer.Option("--show-secrets")] = False,
) -> None:
    """Print the resolved settings as shell assignments: eval "$(tunelake env)"."""
    from tunelake_ops.shell_env import shell_assignments

    print("\n".join(shell_assignments(get_settings(), show_secrets=show_secrets)))


pipeline_app = typer.Typer(help="The whole chain, as the DAGs run it.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("run")
def pipeline_run(
    start: FromDate = None,
    end: ToDate = None,
) -> None:
    """Bronze catch-up, validate Bronze, build Silver, validate Silver, publish: in-process."""
    from dq.reports import QualityGateError
    from spark_jobs.bronze.ingest import BronzeStreamError
    from spark_jobs.bronze.lease import BronzeLeaseError
    from spark_jobs.silver.build import SilverError
    from tunelake_ops.pipeline import run_pipeline

    try:
        summary = run_pipeline(get_settings(), *date_range(start, end), progress=_progress)
    except (BronzeLeaseError, BronzeStreamError, SilverError, QualityGateError) as exc:
        raise _fail(exc) from None
    Console().print(summary.render())


quality_app = typer.Typer(
    help="Inspect a failed quality gate; move the rows it failed on out of Bronze.",
    no_args_is_help=True,
)
app.add_typer(quality_app, name="quality")
RunId = Annotated[str | None, typer.Option(help="Default: <from>_<to>")]


def _run_id(start: str | None, end: str | None, run_id: str | None) -> str:
    from spark_jobs.silver.build import SilverRun

    return SilverRun.for_dates(*date_range(start, end), run_id=run_id).run_id


@quality_app.command("show")
def quality_show(start: FromDate = None, end: ToDate = None, run_id: RunId = None) -> None:
    """Print a Silver run's stored validation results: failing expectations, sample values."""
    from dq.reports import stored

    settings = get_settings()
    run = _run_id(start, end, run_id)
    stages = stored(settings, run)
    if not stages:
        raise _fail(
            LookupError(
                f"no quality results for run {run} in s3://{settings.lakehouse_bucket}/"
                f"_quality/{run}/: validate it first (`tunelake silver validate-bronze`)"
            )
        )
    failing = [r for reports in stages.values() for r in reports if not r.passed]
    for stage, reports in stages.items():
        print(f"{stage} validation of run {run}:")
        print("\n".join(f"  {line}" for r in reports for line in r.describe().splitlines()))
    if failing:
        print(
            f"\n{len(failing)} table(s) failed a critical expectation. Bronze rows that break "
            "one can be moved to their topic's quarantine, then the run repeated:\n"
            "  tunelake quality quarantine STREAM --where 'SQL predicate' --reason '...' "
            f"--from D --to D\n  tunelake silver all --run-id {run} --from D --to D"
        )
        raise typer.Exit(code=1)


@quality_app.command("quarantine")
def quality_quarantine(
    table: Annotated[
        str, typer.Argument(help="Bronze table: listens, feedback, recommendations (or bronze_*)")
    ],
    where: Annotated[str, typer.Option(help="SQL predicate over the Bronze columns")],
    reason: Annotated[str, typer.Option(help="Why: kept with every moved row")],
    start: FromDate = None,
    end: ToDate = None,
) -> None:
    """Move the Bronze rows ingested in [--from, --to] matching --where to the quarantine."""
    from ingestion.streams import Stream
    from spark_jobs.bronze.lease import BronzeLeaseError
    from spark_jobs.bronze.quarantine import QuarantineError, move_to_quarantine
    from spark_jobs.common.session import build_spark

    try:
        stream = Stream(table.removeprefix("bronze_"))
    except ValueError:
        known = [s.value for s in Stream]
        raise _fail(ValueError(f"unknown table {table!r}; one of {known}")) from None
    settings = get_settings()
    first, last = date_range(start, end)
    try:
        moved = move_to_quarantine(
            build_spark(settings, "tunelake-quality-quarantine"),
            settings,
            stream,
            where,
            reason,
            first,
            last,
        )
    except (QuarantineError, BronzeLeaseError) as exc:
        raise _fail(exc) from None
    print(
        f"moved {moved.rows} row(s) of {moved.table} (version {moved.bronze_version}) to "
        f"{moved.quarantine}; now repeat the run: "
        f"tunelake silver all --from {first} --to {last}"
    )


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help='e.g. "SELECT * FROM silver.listens LIMIT 5"')],
    output: Annotated[SqlFormat, typer.Option("--format", help="How to print rows.")] = (
        SqlFormat.table
    ),
) -> None:
    """Run a statement on Trino (catalog TUNELAKE_TRINO_CATALOG) and print its rows."""
    import csv
    import json
    import sys

    from tunelake_ops.trino import TrinoError, query

    try:
        result = query(get_settings(), statement)
    except TrinoError as exc:
        raise _fail(exc) from None
    if output is SqlFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif output is SqlFormat.json:
        for row in result.rows:
            print(json.dumps(dict(zip(result.columns, row, strict=True))))
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        Console().print(table)


@app.command()
def notebook(
    port: Annotated[int, typer.Option(help="JupyterLab's port on 127.0.0.1.")] = 8888,
) -> None:
    """JupyterLab on notebooks/ with the platform's settings: PySpark + Delta on the object
    store (`build_spark`) and Trino (`tunelake_ops.trino.query`) in every kernel."""
    import os
    import sys

    from tunelake.settings import SOURCE_ROOT

    # The kernel is this interpreter (ipykernel of the notebook extra) with this environment.
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={SOURCE_ROOT / 'notebooks'}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--no-browser",
    ]
    os.execv(sys.executable, argv)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: TUNELAKE_SERVICE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: TUNELAKE_SERVICE_PORT")] = None,
) -> None:
    """Run the recommendation API (uvicorn); OpenAPI docs at /docs."""
    import os

    # Before numpy loads: each request scores on its own thread, and BLAS starting a pool
    # per call oversubscribed the cores until the service stopped answering (make
    # bench-ml, 300 req/s). One BLAS thread per request thread.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    import uvicorn

    from service.app import build_app

    settings = get_settings()
    uvicorn.run(
        build_app(settings),
        host=host or settings.service_host,
        port=port or settings.service_port,
        log_level="info",
        # SIGTERM: in-flight requests get 10 s, then open keep-alive connections are closed
        # (uvicorn would otherwise wait for every client to hang up).
        timeout_graceful_shutdown=10,
    )


@app.command()
def generate(
    users: Annotated[int, typer.Option(min=1)] = 200,
    tracks: Annotated[int, typer.Option(min=1)] = 2000,
    days: Annotated[int, typer.Option(min=0)] = 7,
    seed: int = 7,
    url: Annotated[str | None, typer.Option(help="Default: TUNELAKE_SERVICE_* ")] = None,
) -> None:
    """Seed the track catalog and post realistic traffic through the HTTP API."""
    from ingestion.catalog import write_catalog
    from ingestion.generator import build_world, generate_traffic

    settings = get_settings()
    world = build_world(users, tracks, seed=seed)
    write_catalog(settings, world.catalog())
    api_key = settings.client_api_key
    report = generate_traffic(url or settings.service_url, api_key, world, days)
    console.print(
        f"posted {report.listens:,} listens, {report.feedback:,} feedback events, "
        f"{report.recommendations:,} recommendation requests"
    )


@app.command()
def demo() -> None:
    """Run the main job end to end on the local stack and print a summary."""
    from tunelake_ops.demo import run_demo

    summary = run_demo(get_settings(), progress=_progress)
    Console().print(summary.render())


def main() -> None:
    configure_logging()
    app()
