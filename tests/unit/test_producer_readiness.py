"""EventProducer.ready(): probes with long-lived clients, at most once per interval."""

from __future__ import annotations

import httpx
import pytest

import ingestion.producer as producer_module
from ingestion.producer import EventProducer
from ingestion.streams import Stream
from tunelake.settings import Settings


class FakeAdmin:
    built = 0

    def __init__(self, cluster: dict) -> None:
        FakeAdmin.built += 1
        self.cluster = cluster
        self.probes = 0
        self.closed = False

    def describe_cluster(self) -> dict:
        self.probes += 1
        if self.cluster["down"]:
            raise ConnectionError("broker gone")
        return {"brokers": [{"node_id": 1, "is_fenced": False}]}

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cluster(monkeypatch):
    state = {"down": False, "admins": []}

    def admin_factory(settings, *, timeout_ms):
        admin = FakeAdmin(state)
        state["admins"].append(admin)
        return admin

    FakeAdmin.built = 0
    monkeypatch.setattr(producer_module, "kafka_admin", admin_factory)
    return state


@pytest.fixture
def producer(monkeypatch):
    p = EventProducer(Settings(_env_file=None))
    registry = {"up": True, "calls": 0}

    def subjects():
        registry["calls"] += 1
        if not registry["up"]:
            raise httpx.ConnectError("registry gone")
        return []

    monkeypatch.setattr(p._registry, "subjects", subjects)
    p.registry_state = registry
    yield p
    p.close()


def test_answers_are_cached_between_probes(producer, cluster):
    assert all(producer.ready() for _ in range(10))
    assert producer.registry_state["calls"] == 1
    assert [a.probes for a in cluster["admins"]] == [1]


def test_every_probe_reuses_one_admin_client(producer, cluster, monkeypatch):
    monkeypatch.setattr(producer_module, "READY_TTL_S", 0.0)
    assert all(producer.ready() for _ in range(5))
    assert FakeAdmin.built == 1
    assert cluster["admins"][0].probes == 5


def test_a_failed_probe_drops_the_admin_and_the_next_builds_a_new_one(
    producer, cluster, monkeypatch
):
    monkeypatch.setattr(producer_module, "READY_TTL_S", 0.0)
    cluster["down"] = True
    assert not producer.ready()
    assert cluster["admins"][0].closed
    cluster["down"] = False
    assert producer.ready()
    assert FakeAdmin.built == 2


def test_registry_down_is_not_ready(producer, cluster, monkeypatch):
    monkeypatch.setattr(producer_module, "READY_TTL_S", 0.0)
    producer.registry_state["up"] = False
    assert not producer.ready()
    producer.registry_state["up"] = True
    assert producer.ready()


def test_a_failed_publish_makes_the_next_answer_a_fresh_probe(producer, cluster):
    assert producer.ready()
    producer._failed(Stream.LISTENS, RuntimeError("broker gone"))
    cluster["down"] = True
    assert not producer.ready()  # not the cached "ready" of a moment ago
