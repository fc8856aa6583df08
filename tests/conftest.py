"""Shared fixtures: one Settings, one SparkSession per test session, and live-service guards.

Tiers are marked by folder: ``tests/unit`` -> ``unit``, ``tests/integration`` ->
``integration``, ``tests/e2e`` -> ``e2e`` (the whole pipeline, as ``make demo`` runs it).
Live-service tests never skip: a service that is not healthy fails every test that needs
it with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelake.settings import Settings
from tunelake_ops.airflow_env import airflow_env

# Airflow reads its configuration once, at import: point it at the stack's Airflow first.
# PATH too: Spark tasks find spark-submit next to this interpreter.
for _name, _value in airflow_env(Settings()).items():
    if _name == "PATH":
        os.environ["PATH"] = _value
    else:
        os.environ.setdefault(_name, _value)

TIER_BY_FOLDER = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "e2e": pytest.mark.e2e,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        tier = Path(item.path).relative_to(root).parts[0]
        if tier in TIER_BY_FOLDER:
            item.add_marker(TIER_BY_FOLDER[tier])


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator:
    from spark_jobs.common.session import build_spark

    session = build_spark(settings, "tunelake-tests")
    yield session
    session.stop()


def require_service(settings: Settings, name: str) -> None:
    from tunelake_ops.stack.services import all_services

    if not all_services(settings)[name].healthy():
        pytest.fail(
            f"service {name!r} is not healthy at the configured address: start the stack "
            f"with `make up` (or `tunelake up {name}`), then see `tunelake logs {name}`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Settings:
    require_service(settings, "kafka")
    return settings


@pytest.fixture(scope="session")
def s3(settings: Settings) -> Settings:
    require_service(settings, "s3")
    return settings


@pytest.fixture(scope="session")
def postgres(settings: Settings) -> Settings:
    require_service(settings, "postgres")
    return settings


@pytest.fixture(scope="session")
def registry(settings: Settings) -> Settings:
    require_service(settings, "registry")
    return settings


@pytest.fixture(scope="session")
def connect(settings: Settings) -> Settings:
    require_service(settings, "connect")
    return settings


@pytest.fixture(scope="session")
def trino(settings: Settings) -> Settings:
    require_service(settings, "trino")
    return settings
