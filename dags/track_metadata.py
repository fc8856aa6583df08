"""Daily track metadata: fetch what the day's tracks lack (or have stale) -> rebuild
silver/dim_track (SCD2) -> report event tracks without metadata -> register new tables in
Trino.

Covers the tracks of the Bronze events ingested on the run's day, or on [start, end] when
triggered with those params (a backfill). The source is TUNELAKE_METADATA_SOURCE's
(MusicBrainz, or the offline catalog). Re-running a day fetches nothing twice.
"""

from datetime import datetime

from airflow.sdk import DAG, chain

from tunelake_ops.airflow_tasks import (
    DEFAULT_ARGS,
    backfill_params,
    dated_stage_tasks,
    register_in_trino_task,
)
from tunelake_ops.pipeline import METADATA_STAGES

with DAG(
    dag_id="track_metadata",
    description="Track metadata (MusicBrainz or offline) into Bronze and the dim_track SCD2",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tunelake", "metadata", "silver"],
    params=backfill_params(),
):
    chain(
        *dated_stage_tasks("metadata", METADATA_STAGES, prefix="metadata_"),
        register_in_trino_task(),
    )
