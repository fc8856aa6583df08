"""Property-based run over the OpenAPI spec: valid and invalid inputs never yield a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.recommender import PopularityRecommender
from tests.support import CATALOG, RecordingPublisher
from tunelake.settings import Settings

app = create_app(
    Settings(_env_file=None, api_keys="fuzz-key"),
    publisher=RecordingPublisher(),
    recommender=PopularityRecommender(lambda: CATALOG),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_on_any_input(case):
    response = case.call(headers={"X-API-Key": "fuzz-key"})
    assert response.status_code < 500, (response.status_code, response.text)
