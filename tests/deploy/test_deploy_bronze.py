"""One Bronze writer per topic in every deployment shape (offline).

The chart runs Bronze only as the ``bronze-streaming`` SparkApplication (one driver, which
the Spark operator replaces rather than overlaps); compose runs Bronze only through the
``bronze_catchup`` DAG, one run at a time. The topic leases turn away any other writer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_support import ENVIRONMENTS, pod_specs, spark_app_specs
from test_deploy_compose import load_compose

pytestmark = pytest.mark.unit

BRONZE_JOB = "bronze"


def _runs_bronze(words: list[str]) -> bool:
    return BRONZE_JOB in words


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_chart_runs_one_bronze_writer_a_single_streaming_driver(
    rendered: dict[str, list[dict]], env: str
) -> None:
    writers = [
        (m["kind"], spec)
        for m in rendered[env]
        for spec in spark_app_specs(m)
        if spec["arguments"][0] == BRONZE_JOB
    ]
    [(kind, spec)] = writers
    assert kind == "SparkApplication"  # not scheduled: no run starts beside the stream
    assert spec["arguments"][1:] == ["--follow"]
    for manifest in rendered[env]:
        for pod in pod_specs(manifest):
            for container in pod.get("containers", []):
                words = [*(container.get("command") or []), *(container.get("args") or [])]
                assert not _runs_bronze(words), manifest["metadata"]["name"]
    [settings] = [
        m["data"]
        for m in rendered[env]
        if m["kind"] == "ConfigMap" and "TUNELAKE_ENVIRONMENT" in (m.get("data") or {})
    ]
    assert int(settings["TUNELAKE_BRONZE_METRICS_PORT"]) > 0
    assert float(settings["TUNELAKE_BRONZE_LEASE_WAIT_SECONDS"]) > 0


def test_compose_runs_bronze_only_through_the_airflow_dag(
    tool: Callable[[str], Path], repo_root: Path
) -> None:
    project = load_compose(tool("composecheck"), repo_root)
    for name, service in project["services"].items():
        command = service.get("command") or []
        words = command if isinstance(command, list) else command.split()
        assert not _runs_bronze(words), f"compose service {name} writes Bronze: {json.dumps(words)}"
