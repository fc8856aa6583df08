"""silver_daily end to end through Airflow (dag.test) on the live stack.

Its Spark tasks are real spark-submit processes; they inherit this test's environment,
which points them at a bucket and topics of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from airflow.dag_processing.dagbag import DagBag

from ingestion.producer import EventProducer
from ingestion.streams import STREAMS, Stream
from spark_jobs.bronze.ingest import run as bronze
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.airflow_env import DAGS_FOLDER
from tunelake.stack.probes import ensure_buckets, ensure_topics


def test_silver_daily_runs_to_success(spark, kafka, registry, s3, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    overrides = {
        "lakehouse_bucket": f"it-airflow-{suffix}",
        **{STREAMS[s].topic_setting: f"it_af_{s.value}_{suffix}" for s in Stream},
    }
    for name, value in overrides.items():
        monkeypatch.setenv(f"TUNELAKE_{name.upper()}", value)
    settings = kafka.model_copy(update=overrides)
    ensure_buckets(settings, (settings.lakehouse_bucket,))
    ensure_topics(settings, tuple(STREAMS[s].topic(settings) for s in Stream))
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
