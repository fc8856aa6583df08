"""The platform's jobs, in one registry: the CLI, spark-submit, the Airflow tasks, the Helm
applications and the tests all start a job through it.

Each job is a plain function whose typed parameters are its options; ``main(argv)``
configures logging and runs one, e.g.
``spark-submit tunelake_ops/submit.py silver stage --from 2026-11-25``. The job modules
themselves (``spark_jobs``, ``ml``) know nothing of this registry or the CLI.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tunelake.logs import configure_logging
from tunelake.settings import Settings, get_settings

# The application file spark-submit runs (the installed one: a checkout's or the wheel's).
SUBMIT_APP = Path(__file__).with_name("submit.py")
jobs = typer.Typer(help="The platform's jobs.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)

# The ingest-date range of a run (the DAGs pass the same two options).
FromDate = Annotated[
    str | None,
    typer.Option("--from", help="First ingest date, or today/yesterday (UTC; default: today)"),
]
ToDate = Annotated[
    str | None, typer.Option("--to", help="Last ingest date, or today/yesterday (default: today)")
]


def parse_day(text: str, today: date) -> date:
    """An ISO date, or ``today``/``yesterday`` (UTC): a schedule without templating (the
    chart's ScheduledSparkApplication) names the finished day this way."""
    relative = {"today": today, "yesterday": today - timedelta(days=1)}
    return relative[text] if text in relative else date.fromisoformat(text)


def date_range(start: str | None, end: str | None) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    first = parse_day(start, today) if start else today
    return first, parse_day(end, today) if end else max(first, today)


def fail(exc: Exception) -> typer.Exit:
    """A refused job: its reason on stderr, exit status 1, no traceback."""
    console.print(f"[bold red]error[/] {exc}")
    return typer.Exit(code=1)


@jobs.command()
def bronze(
    once: Annotated[bool, typer.Option("--once", help="Catch up, then stop.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Run until stopped.")] = False,
    streams: Annotated[list[str] | None, typer.Option("--stream", help="Repeatable.")] = None,
) -> None:
    """Land Kafka topics in Bronze Delta tables, exactly once."""
    from ingestion.streams import Stream
    from spark_jobs.bronze.ingest import BronzeStreamError, run
    from spark_jobs.bronze.lease import BronzeLeaseError
    from spark_jobs.common.session import build_spark

    if once == follow:
        raise fail(ValueError("give exactly one of --once and --follow"))
    settings = get_settings()
    chosen = [Stream(s) for s in streams] if streams else list(Stream)
    try:
        run(build_spark(settings, "tunelake-bronze"), settings, chosen, once=once)
    except (BronzeLeaseError, BronzeStreamError) as exc:
        raise fail(exc) from None


@jobs.command()
def silver(
    stage: Annotated[
        str, typer.Argument(help="validate-bronze, stage, validate-silver, publish, or all")
    ] = "all",
    start: FromDate = None,
    end: ToDate = None,
    run_id: Annotated[str | None, typer.Option(help="Default: <from>_<to>")] = None,
) -> None:
    """Build Silver from the Bronze rows ingested in [--from, --to], write-audit-publish."""
    from dq.reports import QualityGateError
    from spark_jobs.common.session import build_spark
    from spark_jobs.silver.build import STAGES, SilverError, SilverRun

    if stage not in STAGES:
        raise fail(ValueError(f"unknown stage {stage!r}; one of {sorted(STAGES)}"))
    settings = get_settings()
    run = SilverRun.for_dates(*date_range(start, end), run_id=run_id)
    try:
        STAGES[stage](build_spark(settings, f"tunelake-silver-{stage}"), settings, run)
    except (SilverError, QualityGateError) as exc:
        raise fail(exc) from None


@jobs.command()
def metadata(
    stage: Annotated[str, typer.Argument(help="fetch, build, check, or all")] = "all",
    start: FromDate = None,
    end: ToDate = None,
) -> None:
    """Track metadata for the tracks ingested in [--from, --to]: fetch (Bronze), build
    dim_track (SCD2), check tracks without metadata. The source: TUNELAKE_METADATA_SOURCE."""
    from dq.reports import QualityGateError
    from ingestion.metadata import MetadataSourceError
    from spark_jobs.common.session import build_spark
    from spark_jobs.silver.build import SilverRun
    from spark_jobs.track_metadata import STAGES, refresh

    stages = {**STAGES, "all": refresh}
    if stage not in stages:
        raise fail(ValueError(f"unknown stage {stage!r}; one of {sorted(stages)}"))
    settings = get_settings()
    run = SilverRun.for_dates(*date_range(start, end))
    try:
        stages[stage](build_spark(settings, f"tunelake-metadata-{stage}"), settings, run)
    except (MetadataSourceError, QualityGateError) as exc:
        raise fail(exc) from None


@jobs.command()
def retrain(
    search_seconds: Annotated[
        float | None, typer.Option(help="Search budget (default: TUNELAKE_MODEL_SEARCH_SECONDS)")
    ] = None,
) -> None:
    """Train ALS on Silver, evaluate on held-out plays, register; promote if it passes the gate."""
    from ml.train import TrainingDataError
    from ml.train import retrain as run
    from spark_jobs.common.session import build_spark
    from tunelake_ops.pipeline import retrain_table

    settings = get_settings()
    if search_seconds is not None:
        settings = settings.model_copy(update={"model_search_seconds": search_seconds})
    try:
        result = run(build_spark(settings, "tunelake-retrain"), settings)
    except TrainingDataError as exc:
        raise fail(exc) from None
    Console().print(retrain_table(result))


@jobs.command("dim-user")
def dim_user() -> None:
    """Rebuild Silver dim_user (SCD2) from the Bronze user_profiles changes (Debezium CDC)."""
    from spark_jobs.common.session import build_spark
    from spark_jobs.silver.dim_user import DimUserError, build

    settings = get_settings()
    try:
        build(build_spark(settings, "tunelake-dim-user"), settings)
    except DimUserError as exc:
        raise fail(exc) from None


@jobs.command()
def privacy(
    action: Annotated[
        str,
        typer.Argument(help="delete-users (then VACUUM LITE), or vacuum (FULL: lists the tables)"),
    ] = "delete-users",
    requested_by: Annotated[
        str | None, typer.Option(help="Who asked for the run, kept in the audit records")
    ] = None,
) -> None:
    """Remove the users deleted in PostgreSQL (Silver dim_user) from every Silver table,
    record each deletion in audit.privacy_deletions, then VACUUM Silver."""
    from spark_jobs.common.session import build_spark
    from spark_jobs.silver import privacy as job

    if action not in ("delete-users", "vacuum"):
        raise fail(ValueError(f"unknown action {action!r}; one of delete-users, vacuum"))
    settings = get_settings()
    spark = build_spark(settings, f"tunelake-privacy-{action}")
    if action == "vacuum":
        console.print(f"vacuumed: {', '.join(job.vacuum(spark, settings, lite=False))}")
        return
    done = job.run(spark, settings, requested_by)
    console.print(
        f"{len(done.deletions)} deletion(s) processed; rows removed {done.rows_removed}; "
        f"track days recomputed {len(done.recomputed_dates)}"
    )


def spark_submit_argv(settings: Settings, *job: str) -> list[str]:
    """``spark-submit`` of a job, as the Airflow tasks build it (jars on the command line:
    Delta's session extension must be on the driver's classpath before it starts)."""
    import pyspark

    jars = settings.spark_jar_list()
    return [
        # pyspark's own script finds its Spark home beside itself, whatever PATH holds.
        str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
        *("--master", settings.spark_master),
        *(("--jars", ",".join(jars)) if jars else ()),
        # Locally the driver is this interpreter (the one with tunelake installed).
        *(("--conf", f"spark.pyspark.python={sys.executable}") if settings.is_local_spark else ()),
        str(SUBMIT_APP),
        *job,
    ]


JOBS = {command.name or command.callback.__name__: command for command in jobs.registered_commands}


def main(argv: list[str] | None = None) -> None:
    """Run the job ``argv`` names (``sys.argv[1:]`` by default), with logging configured."""
    configure_logging()
    jobs(argv, prog_name="tunelake")


if __name__ == "__main__":
    main()
