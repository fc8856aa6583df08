"""The service against the real broker and registry: what is accepted is in Kafka, as sent."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import TopicPartition

from ingestion.avro_codec import TopicCodec
from ingestion.producer import EventProducer
from ingestion.registry import SchemaRegistry
from ingestion.schemas import load_schema
from service.app import build_app, create_app
from service.recommender import PopularityRecommender
from tests.support import CATALOG, make_listens
from tunelake.clients import kafka_consumer

KEY = {"X-API-Key": "tunelake-local-key"}


def _end_offsets(settings, topic):
    consumer = kafka_consumer(settings, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return ends


def _read_between(settings, topic, start, stop, schema_name):
    """Decode every record in [start, stop) per partition."""
    consumer = kafka_consumer(settings, group_id=None)
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    records = []
    remaining = {tp for tp in start if stop[tp] > start[tp]}
    with SchemaRegistry(settings.schema_registry_url) as registry:
        codec = TopicCodec(registry, topic, load_schema(schema_name))
        while remaining:
            batch = consumer.poll(timeout_ms=5000)
            assert batch, f"no records within 5 s; still waiting on {remaining}"
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < stop[tp]:
                        records.append((message.key, codec.decode(message.value)))
                if consumer.position(tp) >= stop[tp]:
                    remaining.discard(tp)
    consumer.close()
    return records


@pytest.fixture(scope="module")
def client(kafka, registry, s3):
    with TestClient(build_app(kafka), headers=KEY) as test_client:
        yield test_client


def test_accepted_listens_are_in_kafka_exactly_as_posted(client, kafka):
    topic = kafka.topic_listening_history
    user = f"it-user-{uuid.uuid4().hex[:8]}"
    body = make_listens(25, context="playlist:chill", request_id="req-42")
    body["listens"][3]["played_at"] = "2011-03-04T05:06:07.890Z"
    body["listens"][4]["context"] = None
    before = _end_offsets(kafka, topic)

    response = client.post(f"/users/{user}/listens", json=body, headers=KEY)

    assert response.status_code == 202
    assert response.json() == {"accepted": 25}
    records = _read_between(kafka, topic, before, _end_offsets(kafka, topic), "listen")
    mine = [(key, r) for key, r in records if r["user_id"] == user]
    assert len(mine) == 25
    assert {key for key, _ in mine} == {user.encode()}  # keyed by user id
    by_track = {r["track_id"]: r for _, r in mine}
    for posted in body["listens"]:
        record = by_track[posted["track_id"]]
        assert record["ms_played"] == posted["ms_played"]
        assert record["context"] == posted["context"]
        assert record["request_id"] == "req-42"
        assert record["played_at"] == datetime.fromisoformat(posted["played_at"])
        assert record["schema_version"] == 1
    assert len({r["event_id"] for _, r in mine}) == 25


def test_a_recommendation_writes_its_impression(client, kafka):
    topic = kafka.topic_recommendation_events
    before = _end_offsets(kafka, topic)
    response = client.get("/users/it-impressions/recommendations", params={"k": 3})
    assert response.status_code == 200
    body = response.json()
    records = _read_between(
        kafka, topic, before, _end_offsets(kafka, topic), "recommendation_event"
    )
    [impression] = [r for _, r in records if r["request_id"] == body["request_id"]]
    assert impression["user_id"] == "it-impressions"
    assert impression["items"] == body["items"]
    assert impression["model_version"] == body["model_version"]


def test_feedback_lands_in_its_topic(client, kafka):
    topic = kafka.topic_recommendation_feedback
    before = _end_offsets(kafka, topic)
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    body = {"request_id": request_id, "track_id": "t-1", "action": "dislike"}
    assert client.post("/users/u-fb/feedback", json=body, headers=KEY).status_code == 202
    records = _read_between(kafka, topic, before, _end_offsets(kafka, topic), "feedback")
    [event] = [r for _, r in records if r["request_id"] == request_id]
    assert (event["user_id"], event["track_id"], event["action"]) == ("u-fb", "t-1", "dislike")


def test_schemas_are_registered_backward_compatible(client, kafka):
    response = httpx.get(
        f"{kafka.schema_registry_url}/config/{kafka.topic_listening_history}-value"
    )
    assert response.json()["compatibilityLevel"] == "BACKWARD"


def test_readyz_with_the_stack_up(client):
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "broken",
    [
        {"kafka_bootstrap_servers": "127.0.0.1:1"},
        {"schema_registry_url": "http://127.0.0.1:1/apis/ccompat/v7"},
    ],
    ids=["kafka-down", "registry-down"],
)
def test_unreachable_event_store_is_503_and_nothing_accepted(kafka, broken):
    settings = kafka.model_copy(update=broken)
    producer = EventProducer(settings, timeout_s=2)
    app = create_app(
        settings, publisher=producer, recommender=PopularityRecommender(lambda: CATALOG)
    )
    with TestClient(app, headers=KEY) as client:
        listens = client.post("/users/u/listens", json=make_listens(2))
        assert listens.status_code == 503
        assert "nothing was accepted" in listens.json()["detail"]
        assert "accepted" not in listens.json()
        assert client.get("/users/u/recommendations").status_code == 503
        assert client.get("/readyz").status_code == 503
    producer.close()
