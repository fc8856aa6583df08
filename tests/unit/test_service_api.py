"""Routes against a recording publisher: contract shapes and every 4xx path.

The ``client`` sends a read-write key by default; the gate's own refusals (401, 403, 413,
429) are in test_service_gate.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from ingestion.streams import Stream
from service.app import create_app
from service.recommender import PopularityRecommender
from tests.support import CATALOG, RecordingPublisher, make_listens
from tunelake.settings import Settings

KEY = {"X-API-Key": "test-key"}


@pytest.fixture
def publisher():
    return RecordingPublisher()


@pytest.fixture
def client(publisher):
    settings = Settings(_env_file=None, api_keys="test-key,other-key", api_read_keys="read-key")
    app = create_app(
        settings, publisher=publisher, recommender=PopularityRecommender(lambda: CATALOG)
    )
    return TestClient(app, headers=KEY)


def test_recommendations_follow_the_contract_and_log_one_impression(client, publisher):
    response = client.get("/users/u-1/recommendations", params={"k": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user_id", "request_id", "model_version", "items"}
    assert body["user_id"] == "u-1"
    assert body["model_version"] == "popularity"
    assert body["items"] == [
        {"track_id": "t-hit", "rank": 1, "score": 100.0},
        {"track_id": "t-mid", "rank": 2, "score": 10.0},
    ]
    [(stream, [event])] = publisher.sent
    assert stream is Stream.RECOMMENDATIONS
    assert event["request_id"] == body["request_id"]
    assert event["items"] == body["items"]
    assert event["user_id"] == "u-1"


def test_recommendations_skip_tracks_the_user_played(client):
    listens = {
        "listens": [{"track_id": "t-hit", "played_at": "2020-01-01T00:00:00Z", "ms_played": 5}]
    }
    assert client.post("/users/u-2/listens", json=listens, headers=KEY).status_code == 202
    items = client.get("/users/u-2/recommendations", params={"k": 2}).json()["items"]
    assert [i["track_id"] for i in items] == ["t-mid", "t-tail"]
    other = client.get("/users/u-3/recommendations", params={"k": 1}).json()["items"]
    assert other[0]["track_id"] == "t-hit"


def test_listens_are_accepted_only_after_publish(client, publisher):
    body = make_listens(3, context="playlist", request_id="req-1")
    response = client.post("/users/u-1/listens", json=body, headers=KEY)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3}
    [(stream, events)] = publisher.sent
    assert stream is Stream.LISTENS
    assert [e["track_id"] for e in events] == ["t-0", "t-1", "t-2"]
    assert {e["user_id"] for e in events} == {"u-1"}
    assert {e["request_id"] for e in events} == {"req-1"}
    assert len({e["event_id"] for e in events}) == 3


def test_history_imports_from_years_ago_are_fine(client):
    body = make_listens(1, played_at="2009-05-01T12:00:00+02:00")
    assert client.post("/users/u-1/listens", json=body, headers=KEY).status_code == 202


def test_feedback_is_published(client, publisher):
    body = {"request_id": "req-9", "track_id": "t-1", "action": "like"}
    response = client.post("/users/u-1/feedback", json=body, headers=KEY)
    assert response.status_code == 202
    [(stream, [event])] = publisher.sent
    assert stream is Stream.FEEDBACK
    assert (event["action"], event["request_id"]) == ("like", "req-9")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/u-1/listens", make_listens(1)),
        ("/users/u-1/feedback", {"request_id": "r", "track_id": "t", "action": "skip"}),
    ],
)
@pytest.mark.parametrize("headers", [{"X-API-Key": ""}, {"X-API-Key": "wrong"}])
def test_writes_need_a_known_api_key(client, publisher, path, body, headers):
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ms_played": -1}, "ms_played"),
        ({"played_at": "2026-01-01T00:00:00"}, "played_at"),  # no UTC offset
        ({"played_at": "yesterday"}, "played_at"),
        ({"track_id": ""}, "track_id"),
        ({"track_id": "has space"}, "track_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_listens_get_field_level_422(client, publisher, overrides, field):
    response = client.post("/users/u-1/listens", json=make_listens(2, **overrides), headers=KEY)
    assert response.status_code == 422
    assert any(field in err["loc"] for err in response.json()["detail"])
    assert publisher.sent == []


def test_future_plays_beyond_five_minutes_are_rejected(client, publisher):
    soon = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = {
        "listens": [
            {"track_id": "a", "played_at": soon, "ms_played": 1},
            {"track_id": "b", "played_at": later, "ms_played": 1},
        ]
    }
    response = client.post("/users/u-1/listens", json=body, headers=KEY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "listens", 1, "played_at"]
    assert publisher.sent == []


def test_empty_and_oversize_batches(client, publisher):
    assert client.post("/users/u/listens", json={"listens": []}, headers=KEY).status_code == 422
    response = client.post("/users/u/listens", json=make_listens(1001), headers=KEY)
    assert response.status_code == 413
    assert "1000" in response.json()["detail"]
    assert client.post("/users/u/listens", json=make_listens(1000), headers=KEY).status_code == 202
    assert len(publisher.sent) == 1


def test_huge_bodies_are_refused_before_parsing(client):
    response = client.post(
        "/users/u/listens",
        content=b"x" * 2_000_000,
        headers={**KEY, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize("k", [0, 101, "ten"])
def test_bad_k_is_422(client, k):
    assert client.get("/users/u/recommendations", params={"k": k}).status_code == 422


def test_bad_user_id_is_422(client):
    assert client.get("/users/bad%20id/recommendations").status_code == 422


def test_bad_feedback_action_is_422(client):
    body = {"request_id": "r", "track_id": "t", "action": "love"}
    response = client.post("/users/u/feedback", json=body, headers=KEY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "action"]


def test_publish_failure_is_503_and_nothing_accepted():
    failing = RecordingPublisher(fail=True)
    app = create_app(
        Settings(_env_file=None, api_keys="k"),
        publisher=failing,
        recommender=PopularityRecommender(lambda: CATALOG),
    )
    client = TestClient(app, headers={"X-API-Key": "k"})
    listens = client.post("/users/u/listens", json=make_listens(2))
    assert listens.status_code == 503
    assert "nothing was accepted" in listens.json()["detail"]
    assert "retrying the same request is safe" in listens.json()["detail"]
    assert client.get("/users/u/recommendations").status_code == 503
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_metrics_count_published_events(client):
    client.post("/users/u/listens", json=make_listens(4), headers=KEY)
    text = client.get("/metrics").text
    assert 'tunelake_events_published_total{stream="listens"} 4.0' in text
    assert "tunelake_http_request_seconds" in text


def test_no_catalog_yet_gives_an_empty_list(publisher):
    app = create_app(
        Settings(_env_file=None, api_keys="test-key"),
        publisher=publisher,
        recommender=PopularityRecommender(lambda: None),
    )
    response = TestClient(app, headers=KEY).get("/users/u/recommendations")
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_a_retried_batch_keeps_its_event_ids(client, publisher):
    body = make_listens(3)
    assert client.post("/users/u-1/listens", json=body, headers=KEY).status_code == 202
    assert client.post("/users/u-1/listens", json=body, headers=KEY).status_code == 202
    first, retry = ([e["event_id"] for e in events] for _, events in publisher.sent)
    assert first == retry
    assert len(set(first)) == 3
    assert all(str(uuid.UUID(event_id)) == event_id for event_id in first)


def test_event_ids_follow_the_content_at_millisecond_precision(client, publisher):
    same_instant = [
        {"track_id": "t", "played_at": "2026-01-01T10:00:00.123Z", "ms_played": 5},
        {"track_id": "t", "played_at": "2026-01-01T11:00:00.123400+01:00", "ms_played": 5},
    ]
    different = [
        {"track_id": "t", "played_at": "2026-01-01T10:00:00.124Z", "ms_played": 5},
        {"track_id": "t", "played_at": "2026-01-01T10:00:00.123Z", "ms_played": 6},
        {"track_id": "u", "played_at": "2026-01-01T10:00:00.123Z", "ms_played": 5},
    ]
    for listen in same_instant + different:
        client.post("/users/u-1/listens", json={"listens": [listen]}, headers=KEY)
    client.post("/users/u-2/listens", json={"listens": [same_instant[0]]}, headers=KEY)
    ids = [events[0]["event_id"] for _, events in publisher.sent]
    assert ids[0] == ids[1]
    assert len(set(ids[1:])) == 5  # another ms, duration, track or user: another event


def test_an_idempotency_key_names_the_events(client, publisher):
    body = make_listens(2)
    moved = make_listens(2, ms_played=7)  # content changed, same key: the same events
    for listens in (body, moved):
        client.post("/users/u-1/listens", json=listens, headers={**KEY, "Idempotency-Key": "b-1"})
    client.post("/users/u-1/listens", json=body, headers={**KEY, "Idempotency-Key": "b-2"})
    keyed, same_key, other_key = ([e["event_id"] for e in events] for _, events in publisher.sent)
    assert keyed == same_key
    assert len(set(keyed)) == 2
    assert not set(keyed) & set(other_key)


def test_feedback_ids_follow_content_or_idempotency_key(client, publisher):
    like = {"request_id": "req-1", "track_id": "t-1", "action": "like"}
    skip = like | {"action": "skip"}
    keyed = {**KEY, "Idempotency-Key": "f"}
    for body, headers in [(like, KEY), (like, KEY), (skip, KEY), (like, keyed)]:
        assert client.post("/users/u-1/feedback", json=body, headers=headers).status_code == 202
    ids = [events[0]["event_id"] for _, events in publisher.sent]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3


def test_a_bad_idempotency_key_is_422(client, publisher):
    headers = {**KEY, "Idempotency-Key": "has space"}
    response = client.post("/users/u/listens", json=make_listens(1), headers=headers)
    assert response.status_code == 422
    assert publisher.sent == []


def test_a_read_only_key_reads_but_does_not_write(client, publisher):
    read = {"X-API-Key": "read-key"}
    assert client.get("/users/u/recommendations", headers=read).status_code == 200
    response = client.post("/users/u/listens", json=make_listens(1), headers=read)
    assert response.status_code == 403
    assert [stream for stream, _ in publisher.sent] == [Stream.RECOMMENDATIONS]


class FlakySource:
    """A popularity loader that answers, then fails (S3 down)."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.calls = 0

    def __call__(self) -> list[tuple[str, float]]:
        self.calls += 1
        if not self.answers:
            raise ConnectionError("S3 unreachable")
        return CATALOG


def _app_with(source: FlakySource, publisher: RecordingPublisher) -> TestClient:
    app = create_app(
        Settings(_env_file=None, api_keys="test-key"),
        publisher=publisher,
        recommender=PopularityRecommender(source, ttl_s=0.0, retry_s=30.0),
    )
    return TestClient(app, headers=KEY)


def test_source_down_serves_the_last_loaded_ranking(publisher):
    source = FlakySource(answers=True)
    client = _app_with(source, publisher)
    assert client.get("/users/u/recommendations", params={"k": 1}).status_code == 200
    source.answers = False
    response = client.get("/users/u/recommendations", params={"k": 1})
    assert response.status_code == 200
    assert response.json()["items"][0]["track_id"] == "t-hit"
    assert source.calls == 2


def test_source_down_before_any_load_is_503_with_retry_after(publisher):
    source = FlakySource(answers=False)
    client = _app_with(source, publisher)
    for _ in range(2):  # the second call within retry_s does not ask the source again
        response = client.get("/users/u/recommendations")
        assert response.status_code == 503
        assert 1 <= int(response.headers["Retry-After"]) <= 30
        assert "S3 unreachable" in response.json()["detail"]
    assert source.calls == 1
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("overrides", "bound"),
    [
        ({"played_at": "1999-12-31T23:59:59Z"}, "before the earliest event time 2000-01-01"),
        ({"played_at": "1970-01-01T00:00:00Z"}, "before the earliest event time 2000-01-01"),
        # A time ahead of the clock: resolved when the test runs, not when it is collected.
        ({"played_at": timedelta(minutes=6)}, "more than 5 minutes in the future"),
        ({"ms_played": -1}, "greater than or equal to 0"),
        ({"ms_played": 86_400_001}, "less than or equal to 86400000"),
    ],
)
def test_listens_out_of_bounds_are_422_naming_field_and_bound(client, publisher, overrides, bound):
    body = make_listens(2)
    body["listens"][1] |= {
        k: (datetime.now(UTC) + v).isoformat() if isinstance(v, timedelta) else v
        for k, v in overrides.items()
    }
    response = client.post("/users/u-1/listens", json=body, headers=KEY)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "listens", 1, next(iter(overrides))]
    assert bound in error["msg"]
    assert publisher.sent == []


def test_the_earliest_event_date_is_the_setting(client, publisher, monkeypatch):
    import service.models

    later = Settings(_env_file=None, earliest_event_date="2020-01-01")
    monkeypatch.setattr(service.models, "get_settings", lambda: later)
    body = make_listens(1, played_at="2019-06-01T00:00:00Z")
    response = client.post("/users/u-1/listens", json=body, headers=KEY)
    assert response.status_code == 422
    assert "2020-01-01T00:00:00Z" in response.json()["detail"][0]["msg"]
    assert publisher.sent == []
