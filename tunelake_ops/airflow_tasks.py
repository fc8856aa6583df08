"""Task factories for the DAG files, so that a DAG file only wires tasks.

Every Spark task is a ``SparkSubmitOperator`` running ``tunelake_ops/submit.py`` with a
job of ``tunelake_ops.jobs``. The Spark master comes from the Airflow connection
``tunelake_spark`` (``local[2]`` on the local stack; a cluster URL elsewhere); the jars come
from settings; secrets reach the job through its environment, never its command line.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from tunelake.settings import get_settings
from tunelake_ops.airflow_env import SPARK_CONNECTION
from tunelake_ops.jobs import SUBMIT_APP

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
}
# The ingest-date range a run covers: the backfill params, else the run's data interval.
FROM_DATE = "{{ params.start or (data_interval_start or dag_run.run_after).strftime('%Y-%m-%d') }}"
TO_DATE = (
    "{{ params.end or params.start or (data_interval_start or dag_run.run_after)"
    ".strftime('%Y-%m-%d') }}"
)


def tunelake_spark_task(task_id: str, *command: str) -> SparkSubmitOperator:
    """A Spark task running ``tunelake <command>`` through spark-submit."""
    settings = get_settings()
    jars = settings.spark_jar_list()
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONNECTION,
        application=str(SUBMIT_APP),
        application_args=list(command),
        name=f"tunelake-{task_id}",
        jars=",".join(jars) if jars else None,
        driver_memory=settings.spark_driver_memory,
        conf={"spark.sql.session.timeZone": "UTC", "spark.log.level": "WARN"},
    )
