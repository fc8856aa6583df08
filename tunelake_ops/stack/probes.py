"""Readiness probes and idempotent seeding for the stack's services.

A probe answers "ready now?" quickly and never raises: the caller polls it with a bound.
Seeding (topics, buckets, databases) runs once a service is ready and may run again.
"""

from __future__ import annotations

import logging

import httpx

from tunelake.clients import kafka_admin, postgres_connect, s3_client
from tunelake.settings import Settings
from tunelake_ops.stack.ports import accepting, host_port

log = logging.getLogger(__name__)


def _accepting(address: str) -> bool:
    try:
        return accepting(*host_port(address))
    except ValueError:  # a malformed address is "not ready", like any other probe failure
        return False


def kafka_cluster_ready(settings: Settings, timeout_ms: int = 3000) -> bool:
    # A refused socket first: kafka-python logs every refused bootstrap at ERROR, which
    # filled `make up`'s output while the broker started.
    if not any(map(_accepting, settings.kafka_bootstrap_servers.split(","))):
        return False
    try:
        admin = kafka_admin(settings, timeout_ms=timeout_ms)
    except Exception:  # NoBrokersAvailable and socket errors alike mean "not yet"
        return False
    try:
        brokers = admin.describe_cluster().get("brokers", [])
        return any(not broker.get("is_fenced") for broker in brokers)
    except Exception:
        return False
    finally:
        admin.close()


def ensure_topics(settings: Settings, topics: tuple[str, ...]) -> list[str]:
    """Create missing topics with the configured partition count; returns those created."""
    from kafka.admin import NewTopic

    admin = kafka_admin(settings)
    try:
        missing = sorted(set(topics) - set(admin.list_topics()))
        if missing:
            admin.create_topics([NewTopic(t, settings.kafka_topic_partitions, 1) for t in missing])
            log.info("created topics %s", missing)
        return missing
    finally:
        admin.close()


def s3_ready(settings: Settings) -> bool:
    try:
        s3_client(settings, connect_timeout=2).list_buckets()
    except Exception:  # connection refused, 5xx while starting: not ready
        return False
    return True


def ensure_buckets(settings: Settings, buckets: tuple[str, ...]) -> list[str]:
    s3 = s3_client(settings)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    missing = [b for b in buckets if b not in existing]
    for bucket in missing:
        s3.create_bucket(Bucket=bucket)
    if missing:
        log.info("created buckets %s", missing)
    return missing


def drop_bucket(settings: Settings, bucket: str) -> None:
    """Delete a bucket and everything in it (throwaway lakes of tests and benchmarks)."""
    s3 = s3_client(settings)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def postgres_ready(settings: Settings) -> bool:
    try:
        with postgres_connect(settings, "postgres", connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception:  # refused or "the database system is starting up"
        return False
    return True


def ensure_databases(settings: Settings, databases: tuple[str, ...]) -> list[str]:
    from psycopg import sql

    with postgres_connect(settings, "postgres") as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        missing = [db for db in databases if db not in existing]
        for db in missing:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    if missing:
        log.info("created databases %s", missing)
    return missing


def registry_ready(settings: Settings) -> bool:
    try:
        response = httpx.get(f"{settings.schema_registry_url}/subjects", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def connect_ready(settings: Settings) -> bool:
    """Kafka Connect's REST API answers (the worker has joined its group)."""
    try:
        return httpx.get(f"{settings.kafka_connect_url}/connectors", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_event_schemas(settings: Settings) -> dict[str, int]:
    """Register every event topic's Avro schema (BACKWARD compatibility)."""
    from ingestion.producer import EventProducer

    producer = EventProducer(settings)
    try:
        return producer.register_schemas()
    finally:
        producer.close()
