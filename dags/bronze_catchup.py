"""Hourly bounded Bronze catch-up: every topic up to date, then stop."""

from datetime import datetime

from airflow.sdk import DAG

from tunelake_ops.airflow_tasks import DEFAULT_ARGS, register_in_trino_task, tunelake_spark_task

with DAG(
    dag_id="bronze_catchup",
    description="Land every Kafka topic in Bronze (availableNow), exactly once",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tunelake", "bronze"],
):
    tunelake_spark_task("bronze_once", "bronze", "--once") >> register_in_trino_task()
