"""The traffic generator's client waits out the service's rate limit instead of failing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ingestion.generator import TrafficPoster
from service.app import create_app
from service.recommender import PopularityRecommender
from tests.support import CATALOG, RecordingPublisher, make_listens
from tunelake.settings import Settings


def test_a_429_is_waited_out_and_the_post_lands():
    publisher = RecordingPublisher()
    settings = Settings(
        _env_file=None, api_keys="gen-key", api_rate_per_second=4.0, api_rate_burst=1
    )
    app = create_app(
        settings, publisher=publisher, recommender=PopularityRecommender(lambda: CATALOG)
    )
    poster = TrafficPoster("http://testserver", "gen-key")
    poster._http = TestClient(app, headers={"X-API-Key": "gen-key"})  # the app in-process
    listens = make_listens(2)["listens"]
    assert poster.post_listens("u", listens) == 2
    assert poster.post_listens("u", listens) == 2  # the bucket was empty: 429, then waited
    assert len(publisher.sent) == 2
