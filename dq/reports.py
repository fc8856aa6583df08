"""Quality reports: what a validation found, kept in the object store; the gate on them.

Free of Great Expectations (seconds to import), so readers of stored results and the
stages that only check verdicts do not pay for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from tunelake.clients import s3_client
from tunelake.settings import Settings

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
