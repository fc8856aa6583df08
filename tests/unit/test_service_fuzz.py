"""Property-based runs over the OpenAPI spec: valid and invalid inputs never yield a 5xx.

Every route, in the positive and the negative phase, with a read-write key, a read-only key
and none: with no key or a read-only one, no write may reach the publisher.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.auth import OPEN_PATHS
from service.recommender import PopularityRecommender
from tests.support import CATALOG, RecordingPublisher
from tunelake.settings import Settings

publisher = RecordingPublisher()
app = create_app(
    Settings(
        _env_file=None,
        api_keys="fuzz-key",
        api_read_keys="fuzz-read-key",
        api_rate_per_second=1e6,  # the fuzzer is one client with many requests
        api_rate_burst=1_000_000,
    ),
    publisher=publisher,
    recommender=PopularityRecommender(lambda: CATALOG),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
)
fuzz = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@fuzz
def test_no_server_error_with_a_read_write_key(case):
    response = case.call(headers={"X-API-Key": "fuzz-key"})
    assert response.status_code < 500, (response.status_code, response.text)


@schema.parametrize()
@fuzz
def test_no_server_error_and_no_write_with_a_read_only_key(case):
    written = _writes()
    response = case.call(headers={"X-API-Key": "fuzz-read-key"})
    assert response.status_code < 500, (response.status_code, response.text)
    if case.path not in OPEN_PATHS and case.method.upper() not in ("GET", "HEAD"):
        # 401 when the negative phase generated an X-API-Key header of its own
        assert response.status_code in (401, 403), (response.status_code, response.text)
    assert _writes() == written


@schema.parametrize()
@fuzz
def test_no_server_error_and_nothing_published_without_a_key(case):
    sent = len(publisher.sent)
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text)
    if case.path not in OPEN_PATHS:
        assert response.status_code == 401, (response.status_code, response.text)
    assert len(publisher.sent) == sent


def _writes() -> int:
    return sum(1 for stream, _ in publisher.sent if stream.value != "recommendations")
