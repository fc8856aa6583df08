"""Task factories for the DAG files, so that a DAG file only wires tasks.

Every Spark task runs ``tunelake_ops/submit.py`` with a job of ``tunelake_ops.jobs``, in one
of two ways (``TUNELAKE_SPARK_DEPLOY``):

- ``submit`` (local stack, compose): a ``SparkSubmitOperator``; the Spark master comes from
  the Airflow connection ``tunelake_spark`` (``local[2]`` on the local stack, the compose
  Spark master in compose), the jars from settings.
- ``kubernetes``: a ``SparkKubernetesOperator`` creating a SparkApplication on the Spark
  image through the Kubernetes connection ``tunelake_spark``. The application is the
  template the tunelake chart renders with the same spec as its own applications
  (``TUNELAKE_SPARK_APPLICATION_TEMPLATE``), with this task's job as its arguments.

Secrets reach the job through its environment, never its command line. The one task that
is not Spark's, ``register_in_trino_task``, registers the lake's new tables in Trino after a
publication (an HTTP call from the Airflow worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from tunelake.settings import Settings, SparkDeploy, get_settings
from tunelake_ops.airflow_env import SPARK_CONNECTION
from tunelake_ops.jobs import SUBMIT_APP

if TYPE_CHECKING:
    from airflow.models import BaseOperator

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
}
# The ingest-date range a run covers: the backfill params; else, for a scheduled run, the
# day that just finished (a daily run at 00:00 of D covers D-1: Airflow 3 runs a cron schedule
# at its interval's end, and data_interval_end is that moment with or without
# create_cron_data_intervals); else (a manual run) the day it runs on.
_RUN_DAY = (
    "((data_interval_end - macros.timedelta(days=1)) if dag_run.run_type == 'scheduled'"
    " else dag_run.run_after).strftime('%Y-%m-%d')"
)
FROM_DATE = "{{ params.start or " + _RUN_DAY + " }}"
TO_DATE = "{{ params.end or params.start or " + _RUN_DAY + " }}"


def backfill_params() -> dict:
    """The params of a DAG run over ingest dates: ``start`` and ``end`` of a backfill."""
    from airflow.sdk import Param

    return {
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First ingest date of a backfill (default: the run's day)",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last ingest date of a backfill (default: start)",
        ),
    }


def tunelake_spark_task(task_id: str, *command: str) -> BaseOperator:
    """A Spark task running the job ``command`` (e.g. ``"silver", "stage", ...``)."""
    settings = get_settings()
    if settings.spark_deploy is SparkDeploy.KUBERNETES:
        return _spark_application_task(settings, task_id, list(command))
    return _spark_submit_task(settings, task_id, list(command))


def dated_stage_tasks(job: str, stages: Sequence[str], prefix: str = "") -> list[BaseOperator]:
    """One Spark task per stage of ``job`` (``tunelake <job> <stage>``), in order, each over
    the run's ingest dates; task ids are ``<prefix><stage>``."""
    return [
        tunelake_spark_task(
            f"{prefix}{stage.replace('-', '_')}", job, stage, "--from", FROM_DATE, "--to", TO_DATE
        )
        for stage in stages
    ]


def _spark_submit_task(settings: Settings, task_id: str, command: list[str]) -> BaseOperator:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    jars = settings.spark_jar_list()
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONNECTION,
        application=str(SUBMIT_APP),
        application_args=command,
        name=f"tunelake-{task_id}",
        jars=",".join(jars) if jars else None,
        driver_memory=settings.spark_driver_memory,
        conf={"spark.sql.session.timeZone": "UTC", "spark.log.level": "WARN"},
    )


def spark_application(settings: Settings, task_id: str, command: list[str]) -> dict:
    """The SparkApplication a Kubernetes task creates: the chart's template running
    ``submit.py <command>`` (Jinja in ``command`` is rendered by Airflow at run time)."""
    template = settings.spark_application()
    return template | {
        # The operator adds a random suffix per run; Kubernetes names take no underscores.
        "metadata": template["metadata"] | {"name": f"tunelake-{task_id.replace('_', '-')}"},
        "spec": template["spec"] | {"arguments": command},
    }


def _spark_application_task(settings: Settings, task_id: str, command: list[str]) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
        SparkKubernetesOperator,
    )

    application = spark_application(settings, task_id, command)
    return SparkKubernetesOperator(
        task_id=task_id,
        kubernetes_conn_id=SPARK_CONNECTION,
        namespace=application["metadata"]["namespace"],
        template_spec={"spark": application},
        # The driver's log becomes the task's log; the application is deleted when done
        # (the operator keeps no history: Airflow's task log is the record).
        get_logs=True,
        delete_on_termination=True,
        log_events_on_failure=True,
    )


def register_in_trino_task() -> BaseOperator:
    """Registers in Trino every Bronze and Silver table it does not know yet (idempotent)."""
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id="register_in_trino", python_callable=_register_in_trino)


def _register_in_trino() -> list[str]:
    from tunelake_ops.trino import register_tables

    return register_tables(get_settings())
