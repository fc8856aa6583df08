"""silver_daily end to end through Airflow (dag.test) on the live stack.

Its Spark tasks are real spark-submit processes; they inherit this test's environment,
which points them at a bucket and topics of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from airflow.dag_processing.dagbag import DagBag

from ingestion.producer import EventProducer
from ingestion.streams import Stream
from spark_jobs.bronze.ingest import run as bronze
from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.airflow_env import DAGS_FOLDER


@pytest.fixture
def own_lake(kafka, registry, s3, monkeypatch):
    with throwaway_lake(monkeypatch, "it_af") as lake:
        yield lake


# Four spark-submit tasks of ~1-2 minutes each, plus the Bronze catch-up: past the
# default 600 s on a busy 2-core machine, and a timeout leaves the run's task orphaned.
@pytest.mark.timeout(900)
def test_silver_daily_runs_to_success(spark, own_lake):
    settings = own_lake
    producer = EventProducer(settings)
    now = datetime.now(UTC)
    producer.publish(
        Stream.LISTENS,
        [
            {
                "event_id": str(uuid.uuid4()),
                "event_time": now,
                "schema_version": 1,
                "user_id": f"u{i % 3}",
                "track_id": f"t{i % 5}",
                "played_at": now,
                "ms_played": 1000,
                "context": None,
                "request_id": None,
            }
            for i in range(30)
        ],
    )
    producer.close()
    bronze(spark, settings, list(Stream), once=True)

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("silver_daily")
    dag_run = dag.test()

    assert dag_run.state == "success"
    listens = spark.read.format("delta").load(SILVER_TABLES["listens"].path(settings))
    assert listens.count() == 30
    stats = spark.read.format("delta").load(SILVER_TABLES["user_daily_stats"].path(settings))
    assert sorted((r.user_id, r.plays) for r in stats.collect()) == [
        ("u0", 10),
        ("u1", 10),
        ("u2", 10),
    ]
