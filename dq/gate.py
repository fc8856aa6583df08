"""Validate a DataFrame against a suite; keep the results; block publication on failure."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.metadata_types import FailureSeverity
from pyspark.sql import DataFrame

from tunelake.clients import s3_client
from tunelake.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5


@dataclass
class Failure:
    expectation: str
    kwargs: dict
    severity: str
    unexpected_count: int | None
    sample: list


@dataclass
class QualityReport:
    table: str
    run_id: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def critical_failures(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "critical"]

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    def describe(self) -> str:
        lines = [
            f"{self.table}: {self.evaluated - len(self.failures)}/{self.evaluated} "
            f"expectations passed on {self.rows:,} rows"
        ]
        for failure in self.failures:
            lines.append(
                f"  {failure.severity.upper()} {failure.expectation} "
                f"{json.dumps(failure.kwargs, default=str)}: "
                f"{failure.unexpected_count} unexpected, e.g. "
                f"{json.dumps(failure.sample, default=str)}"
            )
        return "\n".join(lines)


class QualityGateError(RuntimeError):
    def __init__(self, reports: list[QualityReport]) -> None:
        self.reports = reports
        run_id = reports[0].run_id if reports else "?"
        super().__init__(
            "quality gate failed; nothing was published:\n"
            + "\n".join(r.describe() for r in reports if not r.passed)
            + f"\ninspect: tunelake quality show --run-id {run_id}; move Bronze rows that "
            "break a rule out: tunelake quality quarantine (see the README's quality section)"
        )


def _context():
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _kwargs(config) -> dict:
    return {k: v for k, v in config.kwargs.items() if k != "batch_id"}


def validate(df: DataFrame, table: str, expectations: list, run_id: str) -> QualityReport:
    """Run ``expectations`` on ``df``; failing rows' samples are kept in the report."""
    context = _context()
    batch = (
        context.data_sources.add_spark(name="spark")
        .add_dataframe_asset(name=table)
        .add_batch_definition_whole_dataframe("batch")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=table, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=table, data=batch, suite=suite)
    )
    # Every expectation runs Spark jobs of its own: read the table once, not once per job.
    df = df.persist()
    try:
        result = definition.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
        rows = df.count()
    finally:
        df.unpersist()
    report = QualityReport(table=table, run_id=run_id, rows=rows, evaluated=len(result.results))
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        report.failures.append(
            Failure(
                expectation=config.type,
                kwargs=_kwargs(config),
                severity=FailureSeverity(config.severity or FailureSeverity.CRITICAL).value,
                unexpected_count=outcome.result.get("unexpected_count"),
                sample=(outcome.result.get("partial_unexpected_list") or [])[:SAMPLE_ROWS],
            )
        )
    (log.info if report.passed and not report.failures else log.warning)(report.describe())
    return report


def store(settings: Settings, reports: list[QualityReport], stage: str) -> str:
    """Keep validation results in the object store; returns the key."""
    run_id = reports[0].run_id if reports else "empty"
    key = f"_quality/{run_id}/{stage}.json"
    body = json.dumps([asdict(r) | {"passed": r.passed} for r in reports], default=str, indent=1)
    s3_client(settings).put_object(Bucket=settings.lakehouse_bucket, Key=key, Body=body.encode())
    return key


def stored(settings: Settings, run_id: str) -> dict[str, list[QualityReport]]:
    """The results ``store`` kept for ``run_id``, by stage (empty if it kept none)."""
    s3 = s3_client(settings)
    prefix = f"_quality/{run_id}/"
    listing = s3.list_objects_v2(Bucket=settings.lakehouse_bucket, Prefix=prefix)
    stages = {}
    for item in sorted(listing.get("Contents", []), key=lambda i: i["Key"]):
        body = s3.get_object(Bucket=settings.lakehouse_bucket, Key=item["Key"])["Body"].read()
        stage = item["Key"].removeprefix(prefix).removesuffix(".json")
        stages[stage] = [
            QualityReport(
                **{k: v for k, v in kept.items() if k not in ("failures", "passed")},
                failures=[Failure(**f) for f in kept["failures"]],
            )
            for kept in json.loads(body)
        ]
    return stages


def gate(reports: list[QualityReport]) -> None:
    if not all(r.passed for r in reports):
        raise QualityGateError(reports)
