"""Daily Silver: validate Bronze -> stage Silver -> validate Silver -> publish -> register
new tables in Trino.

Covers the Bronze rows ingested on the run's day, or on [start, end] when triggered with
those params (a backfill). Re-running a day rewrites the same rows.
"""

from datetime import datetime

from airflow.sdk import DAG, chain

from tunelake_ops.airflow_tasks import (
    DEFAULT_ARGS,
    backfill_params,
    dated_stage_tasks,
    register_in_trino_task,
)
from tunelake_ops.pipeline import SILVER_STAGES

with DAG(
    dag_id="silver_daily",
    description="Silver tables from Bronze, gated by Great Expectations (write-audit-publish)",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tunelake", "silver", "great-expectations"],
    params=backfill_params(),
):
    chain(
        *dated_stage_tasks("silver", SILVER_STAGES),
        register_in_trino_task(),
    )
