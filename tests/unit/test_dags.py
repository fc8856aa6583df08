"""The whole DagBag: imports, no cycles, tags, retries, and every Spark task names a job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from spark_jobs.silver.build import STAGES
from spark_jobs.track_metadata import STAGES as METADATA_JOB_STAGES
from tunelake_ops.airflow_env import DAGS_FOLDER, SPARK_CONNECTION
from tunelake_ops.airflow_tasks import FROM_DATE, TO_DATE
from tunelake_ops.jobs import JOBS, SUBMIT_APP
from tunelake_ops.pipeline import METADATA_STAGES, SILVER_STAGES

REGISTER = "register_in_trino"


@pytest.fixture(scope="module")
def bag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "bronze_catchup",
        "silver_daily",
        "als_retrain",
        "track_metadata",
        "user_profiles",
    }


def test_dags_are_tagged_retried_and_acyclic(bag):
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        assert "tunelake" in dag.tags
        dag.check_cycle()  # raises on a cycle
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.retries >= 2, (dag.dag_id, task.task_id)


def spark_tasks(dag) -> list:
    """Every task but the Trino registration (the one task that is not Spark's)."""
    return [task for task in dag.tasks if task.task_id != REGISTER]


def test_every_spark_task_runs_a_registered_job(bag):
    assert set(SILVER_STAGES) <= set(STAGES)
    for dag in bag.dags.values():
        for task in spark_tasks(dag):
            assert isinstance(task, SparkSubmitOperator)
            assert task.application == str(SUBMIT_APP) and SUBMIT_APP.is_file()
            assert task._conn_id == SPARK_CONNECTION
            command = task.application_args
            assert command[0] in JOBS, command
            if command[0] == "silver":
                assert command[1] in SILVER_STAGES, command
            if command[0] == "metadata":
                assert command[1] in METADATA_STAGES, command


def test_silver_daily_runs_the_pipeline_stages_in_order_then_registers_in_trino(bag):
    dag = bag.get_dag("silver_daily")
    *stages, last = dag.topological_sort()
    assert [t.application_args[1] for t in stages] == list(SILVER_STAGES)
    assert last.task_id == REGISTER and last.upstream_task_ids == {"publish"}
    assert set(dag.params) == {"start", "end"}


def test_track_metadata_fetches_builds_checks_then_registers_in_trino_daily(bag):
    dag = bag.get_dag("track_metadata")
    assert set(METADATA_STAGES) == set(METADATA_JOB_STAGES)
    *stages, last = dag.topological_sort()
    assert [t.application_args[:2] for t in stages] == [["metadata", s] for s in METADATA_STAGES]
    for task in stages:  # the same ingest-date range as silver_daily: backfillable
        assert task.application_args[2:] == ["--from", FROM_DATE, "--to", TO_DATE]
    assert last.task_id == REGISTER and last.upstream_task_ids == {"metadata_check"}
    assert set(dag.params) == {"start", "end"}
    assert dag.schedule == "@daily"


def test_bronze_catchup_registers_new_bronze_tables_in_trino(bag):
    dag = bag.get_dag("bronze_catchup")
    assert dag.get_task(REGISTER).upstream_task_ids == {"bronze_once"}


def test_user_profiles_lands_cdc_rebuilds_dim_user_deletes_then_registers_every_15_min(bag):
    dag = bag.get_dag("user_profiles")
    *stages, last = dag.topological_sort()
    assert [t.application_args for t in stages] == [
        ["bronze", "--once", "--stream", "user_profiles"],
        ["dim-user"],
        ["privacy", "delete-users"],
    ]
    assert last.task_id == REGISTER and last.upstream_task_ids == {"privacy_deletes"}
    assert dag.schedule == "*/15 * * * *"


def test_als_retrain_runs_the_retrain_job_weekly(bag):
    dag = bag.get_dag("als_retrain")
    assert [t.application_args for t in dag.tasks] == [["retrain"]]
    assert dag.schedule == "@weekly"


def test_dag_files_hold_no_business_logic():
    for path in DAGS_FOLDER.glob("*.py"):
        source = path.read_text()
        assert "def " not in source, f"{path.name} defines functions: move them to a module"
        assert "pyspark" not in source and "spark_jobs" not in source, path.name


def test_on_kubernetes_every_spark_task_creates_an_application_of_a_registered_job(monkeypatch):
    """TUNELAKE_SPARK_DEPLOY=kubernetes: the same DAGs, each task a SparkApplication from the
    template (the chart renders the real one; tests/deploy checks it), running its job."""
    import json

    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
        SparkKubernetesOperator,
    )

    from tunelake.settings import get_settings

    template = {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": {"mainApplicationFile": "local:///opt/tunelake/submit.py", "arguments": []},
    }
    monkeypatch.setenv("TUNELAKE_SPARK_DEPLOY", "kubernetes")
    monkeypatch.setenv("TUNELAKE_SPARK_APPLICATION_TEMPLATE", json.dumps(template))
    get_settings.cache_clear()
    try:
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert bag.import_errors == {}
    for dag in bag.dags.values():
        for task in spark_tasks(dag):
            assert isinstance(task, SparkKubernetesOperator)
            assert task.kubernetes_conn_id == SPARK_CONNECTION and task.namespace == "ns"
            app = task.template_spec["spark"]
            assert app["metadata"]["name"] == "tunelake-" + task.task_id.replace("_", "-")
            assert app["spec"]["mainApplicationFile"] == template["spec"]["mainApplicationFile"]
            command = app["spec"]["arguments"]
            assert command[0] in JOBS, command


@pytest.mark.parametrize(
    ("run_type", "interval_end", "params", "expected"),
    [
        # Airflow 3's default cron timetable: the 00:00 run of Nov 30 covers Nov 29.
        ("scheduled", datetime(2026, 11, 30, tzinfo=UTC), {}, ("2026-11-29", "2026-11-29")),
        # A manual run covers the day it runs on (the local pipeline and the UI test).
        ("manual", None, {}, ("2026-11-30", "2026-11-30")),
        # A backfill names its days.
        (
            "manual",
            None,
            {"start": "2026-11-01", "end": "2026-11-03"},
            ("2026-11-01", "2026-11-03"),
        ),
        ("manual", None, {"start": "2026-11-01"}, ("2026-11-01", "2026-11-01")),
    ],
)
def test_silver_covers_the_finished_day_when_scheduled(run_type, interval_end, params, expected):
    from types import SimpleNamespace

    from jinja2 import Environment, StrictUndefined

    from tunelake_ops.airflow_tasks import FROM_DATE, TO_DATE

    context = {
        "params": {"start": None, "end": None} | params,
        "dag_run": SimpleNamespace(
            run_type=run_type, run_after=datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
        ),
        "data_interval_end": interval_end,
        "macros": SimpleNamespace(timedelta=timedelta),
    }
    env = Environment(undefined=StrictUndefined)
    rendered = tuple(env.from_string(t).render(context) for t in (FROM_DATE, TO_DATE))
    assert rendered == expected
