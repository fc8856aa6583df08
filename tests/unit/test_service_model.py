"""Serving the promoted model: personal lists, fold-in, most-popular for the rest, and
swapping versions (promotion, rollback, registry outages) under concurrent requests."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from ml.model import AlsModel
from service.app import create_app
from service.recommender import ModelRecommender, PlayedTracks, PopularityRecommender
from tests.support import CATALOG, RecordingPublisher, two_taste_model
from tunelake.settings import Settings

KEY = {"X-API-Key": "test-key"}


class FakeRegistry:
    """The registry's pointer and versions, moved by the test."""

    def __init__(self, versions: dict[str, AlsModel], current: str | None = None) -> None:
        self.versions = versions
        self.pointer = current
        self.down = False
        self.loads: list[str] = []

    def current(self) -> str | None:
        if self.down:
            raise ConnectionError("S3 unreachable")
        return self.pointer

    def load(self, version: str) -> AlsModel:
        self.loads.append(version)
        return self.versions[version]


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry({"v1": two_taste_model(), "v2": two_taste_model(flipped=True)}, "v1")


@pytest.fixture
def recommender(registry) -> ModelRecommender:
    served = ModelRecommender(registry, PopularityRecommender(lambda: CATALOG))
    served.refresh()
    return served


def tracks(recommendation) -> list[str]:
    return [item.track_id for item in recommendation.items]


def test_a_known_user_gets_the_model_list_without_what_they_played(recommender):
    served = recommender.recommend("u-first", 3, {"t1": 1.0})
    assert served.model_version == "v1"
    # t0 was played in training, t1 since: the first taste's t2, then the other taste.
    assert tracks(served)[0] == "t2"
    assert {"t0", "t1"}.isdisjoint(tracks(served))
    assert [item.rank for item in served.items] == [1, 2, 3]


def test_an_unknown_user_with_listens_since_is_folded_in(recommender):
    served = recommender.recommend("u-new", 2, {"t4": 2.0})
    assert served.model_version == "v1"
    assert tracks(served) == ["t3", "t5"]


def test_a_user_with_nothing_gets_most_popular_without_what_they_played(recommender):
    served = recommender.recommend("u-new", 2, {"t-hit": 1.0, "t-nowhere": 1.0})
    assert served.model_version == "popularity"
    assert tracks(served) == ["t-mid", "t-tail"]


def test_promotion_rollback_and_no_model_swap_without_a_restart(registry, recommender):
    registry.pointer = "v2"
    assert recommender.refresh()
    assert recommender.recommend("u-first", 1, {}).model_version == "v2"
    assert tracks(recommender.recommend("u-first", 1, {})) == ["t3"]
    assert not recommender.refresh()  # unchanged pointer: nothing loaded again
    registry.pointer = "v1"  # a rollback
    assert recommender.refresh()
    assert tracks(recommender.recommend("u-first", 1, {})) == ["t1"]
    registry.pointer = None
    assert recommender.refresh()
    assert recommender.recommend("u-first", 1, {}).model_version == "popularity"
    assert registry.loads == ["v1", "v2", "v1"]


def test_a_registry_outage_keeps_the_served_model(registry):
    served = ModelRecommender(registry, PopularityRecommender(lambda: CATALOG), refresh_s=0.01)
    registry.down = True
    served.start()  # logs the failure, serves most-popular, keeps trying
    try:
        assert served.model_version == "popularity"
        registry.down = False
        assert _eventually(lambda: served.model_version == "v1")
        registry.down = True
        registry.pointer = "v2"
        assert served.recommend("u-first", 1, {}).model_version == "v1"
    finally:
        served.close()


def _eventually(condition, tries: int = 500) -> bool:
    stop = threading.Event()
    for _ in range(tries):
        if condition():
            return True
        stop.wait(0.01)
    return False


def test_swaps_during_requests_fail_none_and_never_mix_versions(registry, recommender):
    app = create_app(
        Settings(
            _env_file=None, api_keys="test-key", api_rate_per_second=1e6, api_rate_burst=10**6
        ),
        publisher=RecordingPublisher(),
        recommender=recommender,
    )
    client = TestClient(app, headers=KEY)
    expected = {"v1": ["t1", "t2"], "v2": ["t3", "t4"]}
    failures: list[object] = []
    done = threading.Event()

    def request_until_done() -> None:
        while not done.is_set():
            response = client.get("/users/u-first/recommendations", params={"k": 2})
            body = response.json()
            served = [i["track_id"] for i in body.get("items", ())]
            if response.status_code != 200 or served != expected[body["model_version"]]:
                failures.append(body)

    workers = [threading.Thread(target=request_until_done) for _ in range(4)]
    for worker in workers:
        worker.start()
    for swap in range(200):
        registry.pointer = ("v2", "v1")[swap % 2]
        recommender.refresh()
    done.set()
    for worker in workers:
        worker.join()
    assert failures == []
    assert len(registry.loads) == 201


def test_played_tracks_weigh_listens_like_training():
    played = PlayedTracks()
    played.add("u", [("t1", 60_000), ("t1", 120_000), ("t2", 0)])
    assert played.of("u") == pytest.approx({"t1": 2 + 0.1 * 3, "t2": 1.0})
    assert played.of("nobody") == {}


class DeletedUsers:
    """Silver dim_user's deleted users, moved by the test (``down``: Silver unreachable)."""

    def __init__(self, *users: str) -> None:
        self.users = set(users)
        self.down = False

    def __call__(self) -> frozenset[str]:
        if self.down:
            raise ConnectionError("S3 unreachable")
        return frozenset(self.users)


def test_a_deleted_user_gets_most_popular_and_nothing_drawn_from_their_plays(registry):
    deleted = DeletedUsers()
    served = ModelRecommender(registry, PopularityRecommender(lambda: CATALOG), deleted=deleted)
    served.refresh()
    assert served.refresh_deleted() == 0
    assert served.recommend("u-first", 2, {}).model_version == "v1"

    deleted.users.add("u-first")
    assert served.refresh_deleted() == 1
    # Known to the model, and with listens since: neither is used.
    for recent in ({}, {"t-hit": 1.0}):
        recommendation = served.recommend("u-first", 2, recent)
        assert recommendation.model_version == "popularity"
        assert tracks(recommendation) == ["t-hit", "t-mid"]
    # Everyone else is served as before.
    assert tracks(served.recommend("u-second", 1, {})) == ["t4"]


def test_the_refresh_thread_follows_deletions_and_keeps_them_through_an_outage(registry):
    deleted = DeletedUsers("u-second")
    served = ModelRecommender(
        registry, PopularityRecommender(lambda: CATALOG), refresh_s=0.01, deleted=deleted
    )
    served.start()
    try:
        assert _eventually(
            lambda: served.recommend("u-second", 1, {}).model_version == "popularity"
        )
        deleted.users.add("u-first")
        assert _eventually(lambda: served.recommend("u-first", 1, {}).model_version == "popularity")
        deleted.down = True
        registry.pointer = "v2"  # the model still follows the registry
        assert _eventually(lambda: served.model_version == "v2")
        assert served.recommend("u-first", 1, {}).model_version == "popularity"
        deleted.down = False
        deleted.users.clear()  # re-created in PostgreSQL
        assert _eventually(lambda: served.recommend("u-first", 1, {}).model_version == "v2")
    finally:
        served.close()


def test_the_api_answers_a_deleted_user_with_the_non_personal_list(registry):
    served = ModelRecommender(
        registry, PopularityRecommender(lambda: CATALOG), deleted=DeletedUsers("u-first")
    )
    served.refresh()
    served.refresh_deleted()
    app = create_app(
        Settings(_env_file=None, api_keys="test-key"),
        publisher=RecordingPublisher(),
        recommender=served,
    )
    body = TestClient(app, headers=KEY).get("/users/u-first/recommendations", params={"k": 3})
    assert body.status_code == 200
    assert body.json()["model_version"] == "popularity"
    assert [i["track_id"] for i in body.json()["items"]] == ["t-hit", "t-mid", "t-tail"]
