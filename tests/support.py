"""Small builders and fakes shared by test modules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np

from ingestion.producer import PublishError
from ingestion.streams import STREAMS, Stream
from ml.model import AlsModel, AlsParams, Interactions
from tunelake.clients import kafka_admin
from tunelake.settings import Settings
from tunelake_ops.stack.probes import drop_bucket, ensure_buckets, ensure_topics
from tunelake_ops.trino import forget_schemas

CATALOG = [("t-hit", 100.0), ("t-mid", 10.0), ("t-tail", 1.0)]

# The ports of the stacks tests start beside the session's, by test module. Every port
# stays below the kernel's ephemeral range (tests/unit/test_ports.py checks them with the
# stack's own), and none is another's.
TEST_STACK_PORTS: dict[str, dict[str, object]] = {
    "test_stack_lifecycle": {
        "kafka_bootstrap_servers": "127.0.0.1:29092",
        "kafka_controller_port": 29093,
        "s3_endpoint_url": "http://127.0.0.1:28333",
        "postgres_port": 25432,
        "schema_registry_url": "http://127.0.0.1:28081/apis/ccompat/v7",
        "connect_registry_url": "http://127.0.0.1:28081/apis/registry/v2",
        "kafka_connect_url": "http://127.0.0.1:28083",
        "airflow_port": 28080,
        "trino_url": "http://127.0.0.1:28090",
    },
    "test_service_recovery": {
        "kafka_bootstrap_servers": "127.0.0.1:29392",
        "kafka_controller_port": 29393,
    },
    "test_stack_anywhere": {"postgres_port": 26432},
}


class RecordingPublisher:
    """Stands in for the Kafka producer in route tests; the real one is in integration."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[Stream, list[dict]]] = []
        self.fail = fail

    def publish(self, stream: Stream, events: list[dict]) -> int:
        if self.fail:
            raise PublishError("broker down")
        self.sent.append((stream, list(events)))
        return len(events)

    def ready(self) -> bool:
        return not self.fail


def make_listens(n: int, **overrides) -> dict:
    """A POST /listens body of ``n`` plays an hour ago; ``overrides`` apply to every play."""
    # Milliseconds: the event contract's precision, so posted and stored values compare equal.
    played_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    return {
        "listens": [
            {"track_id": f"t-{i}", "played_at": played_at, "ms_played": 1000 * i} | overrides
            for i in range(n)
        ]
    }


@contextmanager
def throwaway_lake(monkeypatch, prefix: str, **settings: str) -> Iterator[Settings]:
    """Settings with lakehouse, checkpoints and models buckets and topics of their own (and
    ``settings``), also in the environment for the processes a test starts; all are
    deleted afterwards. A topic named in ``settings`` (a shared one, e.g. Debezium's
    ``user_profiles``) is used as it is and kept."""
    suffix = uuid.uuid4().hex[:8]
    bucket = prefix.replace("_", "-")
    own_topics = {
        STREAMS[s].topic_setting: f"{prefix}_{s.value}_{suffix}"
        for s in Stream
        if STREAMS[s].topic_setting not in settings
    }
    overrides = {
        "lakehouse_bucket": f"{bucket}-{suffix}",
        "checkpoints_bucket": f"{bucket}-checkpoints-{suffix}",
        "models_bucket": f"{bucket}-models-{suffix}",
        # Its tables, once registered in Trino, go to schemas of its own.
        "trino_schema_prefix": f"{prefix.replace('-', '_')}_{suffix}_",
        **own_topics,
        **settings,
    }
    for name, value in overrides.items():
        monkeypatch.setenv(f"TUNELAKE_{name.upper()}", value)
    lake = Settings()
    buckets = (lake.lakehouse_bucket, lake.checkpoints_bucket, lake.models_bucket)
    ensure_buckets(lake, buckets)
    ensure_topics(lake, tuple(own_topics.values()))
    try:
        yield lake
    finally:
        admin = kafka_admin(lake)
        admin.delete_topics(list(own_topics.values()))
        admin.close()
        for name in buckets:
            drop_bucket(lake, name)
        forget_schemas(lake)


def two_taste_model(flipped: bool = False) -> AlsModel:
    """Tracks t0-t2 along one taste axis, t3-t5 along the other; ``u-first`` likes the
    first taste and played t0, ``u-second`` the second and played t3 (``flipped``: the
    users' tastes swapped, a model that ranks differently)."""
    items = np.array([[1, 0], [0.9, 0], [0.8, 0], [0, 1], [0, 0.9], [0, 0.8]], dtype=np.float32)
    users = np.array([[0, 1], [1, 0]] if flipped else [[1, 0], [0, 1]], dtype=np.float32)
    seen = Interactions.from_pairs(2, np.array([0, 1]), np.array([0, 3]), np.array([1.0, 1.0]))
    return AlsModel(
        params=AlsParams(rank=2, reg_param=0.01, alpha=10.0, max_iter=1),
        user_ids=["u-first", "u-second"],
        item_ids=[f"t{i}" for i in range(6)],
        user_factors=users,
        item_factors=items,
        seen=seen,
    )
