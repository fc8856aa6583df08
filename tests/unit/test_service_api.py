"""Routes against a recording publisher: contract shapes and every 4xx path."""

from __future__ import annotations

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
    settings = Settings(_env_file=None, api_keys="test-key,other-key")
    app = create_app(
        settings, publisher=publisher, recommender=PopularityRecommender(lambda: CATALOG)
    )
    return TestClient(app)


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
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
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
    client = TestClient(app)
    listens = client.post("/users/u/listens", json=make_listens(2), headers={"X-API-Key": "k"})
    assert listens.status_code == 503
    assert "nothing was accepted" in listens.json()["detail"]
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
        Settings(_env_file=None),
        publisher=publisher,
        recommender=PopularityRecommender(lambda: None),
    )
    response = TestClient(app).get("/users/u/recommendations")
    assert response.status_code == 200
    assert response.json()["items"] == []
