"""User profiles every 15 minutes: Debezium's changes -> Bronze -> Silver dim_user (SCD2)
-> privacy deletes (users deleted in PostgreSQL leave every Silver table; then VACUUM).

A profile change committed in PostgreSQL reaches dim_user within one interval plus the
run (Kafka Connect streams it to the topic within seconds).
"""

from datetime import datetime

from airflow.sdk import DAG, chain

from tunelake_ops.airflow_tasks import DEFAULT_ARGS, register_in_trino_task, tunelake_spark_task

with DAG(
    dag_id="user_profiles",
    description="CDC of PostgreSQL user_profiles into Bronze and the SCD2 dim_user",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tunelake", "cdc", "silver"],
):
    chain(
        tunelake_spark_task(
            "bronze_user_profiles", "bronze", "--once", "--stream", "user_profiles"
        ),
        tunelake_spark_task("dim_user", "dim-user"),
        tunelake_spark_task("privacy_deletes", "privacy", "delete-users"),
        register_in_trino_task(),
    )
