"""Quality reports: what a validation found, kept in the object store; the gate on them.

Free of Great Expectations (seconds to import), so readers of stored results and the
stages that only check verdicts do not pay for it.

``store`` keeps each validation twice: the whole report as JSON (samples of failing
values, for ``tunelake quality show``), and one row per expectation evaluated appended to
the Delta table ``audit/quality_results`` (for Trino and the pass-rate panel). The rows
are written with delta-rs, not Spark: they are a few dozen rows already in the driver's
memory, which delta-rs commits in a fraction of a second without a Spark job, and it
keeps this module free of Spark like the rest of it. delta-rs commits with a conditional
put (``If-None-Match``), so two runs validating at once cannot overwrite each other's
commit, which Spark's single-driver S3 log store does not guarantee across processes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from tunelake.clients import delta_rs_uri, delta_storage_options, s3_client
from tunelake.settings import Settings

SAMPLE_ROWS = 5
RESULTS_TABLE = "quality_results"


@dataclass
class Failure:
    expectation: str
    kwargs: dict
    severity: str
    unexpected_count: int | None
    sample: list


@dataclass
class Check:
    """One expectation a validation evaluated, and whether it held."""

    expectation: str
    kwargs: dict
    severity: str
    success: bool


@dataclass
class QualityReport:
    table: str
    run_id: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    # Every expectation evaluated (reports stored before it was kept have none).
    checks: list[Check] = field(default_factory=list)

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


def _canonical(kwargs: dict) -> str:
    return json.dumps(kwargs, sort_keys=True, default=str)


def result_rows(
    reports: list[QualityReport], stage: str, checked_at: datetime
) -> list[dict[str, object]]:
    """One row of ``audit/quality_results`` per expectation evaluated; a failed one has the
    count of unexpected values its report kept."""
    rows = []
    for report in reports:
        failed = {(f.expectation, _canonical(f.kwargs)): f for f in report.failures}
        for check in report.checks:
            kwargs = _canonical(check.kwargs)
            failure = None if check.success else failed.get((check.expectation, kwargs))
            rows.append(
                {
                    "run_id": report.run_id,
                    "stage": stage,
                    "table_name": report.table,
                    "expectation": check.expectation,
                    "kwargs": kwargs,
                    "severity": check.severity,
                    "success": check.success,
                    "unexpected_count": failure.unexpected_count if failure else None,
                    "rows": report.rows,
                    "checked_at": checked_at,
                    "check_date": checked_at.date(),
                }
            )
    return rows


def results_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("run_id", pa.string()),
            ("stage", pa.string()),
            ("table_name", pa.string()),
            ("expectation", pa.string()),
            ("kwargs", pa.string()),  # the expectation's arguments (its column), as JSON
            ("severity", pa.string()),
            ("success", pa.bool_()),
            ("unexpected_count", pa.int64()),
            ("rows", pa.int64()),
            ("checked_at", pa.timestamp("us", tz="UTC")),
            ("check_date", pa.date32()),
        ]
    )


def append_results(
    settings: Settings,
    reports: list[QualityReport],
    stage: str,
    checked_at: datetime | None = None,
) -> int:
    """Append the reports' rows to ``audit/quality_results``; returns how many."""
    rows = result_rows(reports, stage, checked_at or datetime.now(UTC))
    if rows:
        import pyarrow as pa
        from deltalake import write_deltalake

        write_deltalake(
            delta_rs_uri(settings.audit_path(RESULTS_TABLE)),
            pa.Table.from_pylist(rows, schema=results_schema()),
            mode="append",
            storage_options=delta_storage_options(settings),
        )
    return len(rows)


def store(settings: Settings, reports: list[QualityReport], stage: str) -> str:
    """Keep validation results in the object store (JSON, and rows of the results table);
    returns the JSON's key."""
    run_id = reports[0].run_id if reports else "empty"
    key = f"_quality/{run_id}/{stage}.json"
    body = json.dumps([asdict(r) | {"passed": r.passed} for r in reports], default=str, indent=1)
    s3_client(settings).put_object(Bucket=settings.lakehouse_bucket, Key=key, Body=body.encode())
    append_results(settings, reports, stage)
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
                **{k: v for k, v in kept.items() if k not in ("failures", "checks", "passed")},
                failures=[Failure(**f) for f in kept["failures"]],
                checks=[Check(**c) for c in kept.get("checks", [])],
            )
            for kept in json.loads(body)
        ]
    return stages


def gate(reports: list[QualityReport]) -> None:
    if not all(r.passed for r in reports):
        raise QualityGateError(reports)
