"""Debezium's capture of PostgreSQL ``user_profiles`` into the ``user_profiles`` topic.

One connector on Kafka Connect: pgoutput over a publication the migrations create, a
replication slot that holds every change until Connect has stored its offset (so a
restarted worker resumes where it stopped, losing nothing), and two transforms:

- ``unwrap`` (Debezium's ExtractNewRecordState): each event is the row after the change
  plus ``cdc_op`` (c, u, d, r for snapshot reads), ``cdc_lsn`` and ``cdc_source_ts_ms``
  (the commit time); a delete is the row before it with ``cdc_deleted`` true. Flat rows
  pass through Bronze's decode and rules like every other topic.
- ``route``: the topic is ``settings.topic_user_profiles``, not Debezium's
  ``<prefix>.<schema>.<table>`` (heartbeats keep their own topic, ``HEARTBEAT_TOPIC``).

Keys and values are Avro, registered by Apicurio's converter and framed like every other
topic (magic byte, 4-byte content id), so Bronze reads them with the registry's schemas.
The database password reaches the connector through the worker's environment
(``${env:...}``), never through the connector config Connect stores in Kafka.

Delivery is at least once: after a worker crash Debezium may send again changes it had
sent but not yet recorded; ``dim_user`` drops them by (user, LSN, op).
"""

from __future__ import annotations

import time

import httpx

from ingestion.profiles import PUBLICATION, TABLE
from tunelake.clients import postgres_connect
from tunelake.settings import Settings

CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
PASSWORD_ENV = "TUNELAKE_POSTGRES_PASSWORD"
USER_ENV = "TUNELAKE_POSTGRES_USER"
RUNNING = "RUNNING"
HEARTBEAT_TOPIC = "__debezium-heartbeat.tunelake"
HEARTBEAT_QUERY = (
    "INSERT INTO cdc_heartbeat (id, beat_at) VALUES (1, now()) "
    "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"
)


class ConnectError(RuntimeError):
    """Kafka Connect refused the connector or it did not start running."""


def _converter(settings: Settings, side: str) -> dict[str, str]:
    prefix = f"{side}.converter"
    return {
        prefix: CONVERTER,
        f"{prefix}.apicurio.registry.url": settings.connect_registry_url,
        f"{prefix}.apicurio.registry.auto-register": "true",
        f"{prefix}.apicurio.registry.find-latest": "true",
        # Confluent framing (0x00 + 4-byte content id) in the payload, not in headers:
        # what Bronze and every Confluent-compatible reader expect.
        f"{prefix}.apicurio.registry.headers.enabled": "false",
        f"{prefix}.apicurio.registry.as-confluent": "true",
        f"{prefix}.apicurio.registry.use-id": "contentId",
    }


def connector_config(settings: Settings, *, user_from_env: bool = False) -> dict[str, str]:
    """The connector's configuration, as Kafka Connect's REST API takes it.

    ``user_from_env``: the user name too is read from the worker's environment
    (``TUNELAKE_POSTGRES_USER``), as on Kubernetes, where user and password are one Secret
    the chart references but never reads.
    """
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": settings.postgres_host,
        "database.port": str(settings.postgres_port),
        "database.user": f"${{env:{USER_ENV}}}" if user_from_env else settings.postgres_user,
        "database.password": f"${{env:{PASSWORD_ENV}}}",
        "database.dbname": settings.postgres_db,
        "topic.prefix": "tunelake",
        "table.include.list": TABLE,
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",
        "slot.name": settings.cdc_slot_name,
        "snapshot.mode": "initial",
        # The delete event itself closes the user in dim_user; Bronze has no use for a
        # null-valued tombstone after it.
        "tombstones.on.delete": "false",
        "transforms": "unwrap,route",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
        "transforms.unwrap.add.fields": "op,lsn,source.ts_ms",
        "transforms.unwrap.add.fields.prefix": "cdc_",
        # Every 10 s: a write to cdc_heartbeat (migration 0002), so the slot advances while
        # user_profiles is quiet, and a record on HEARTBEAT_TOPIC, which Connect creates.
        "heartbeat.interval.ms": "10000",
        "heartbeat.action.query": HEARTBEAT_QUERY,
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "1",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": r"tunelake\.public\.user_profiles",
        "transforms.route.replacement": settings.topic_user_profiles,
        **_converter(settings, "key"),
        **_converter(settings, "value"),
    }


def wait_caught_up(settings: Settings, timeout_s: float = 60.0) -> float:
    """Wait until Debezium has delivered every change committed so far: its replication
    slot confirms a WAL position at or past the current one (it confirms after Kafka acked
    the records and Connect stored their offsets). Returns the seconds waited."""
    started = time.monotonic()
    with postgres_connect(settings) as conn:
        (target,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        while True:
            row = conn.execute(
                "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (target, settings.cdc_slot_name),
            ).fetchone()
            if row and row[0]:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise ConnectError(
                    f"replication slot {settings.cdc_slot_name} did not reach {target} in "
                    f"{timeout_s:.0f} s: is connector {settings.cdc_connector_name} running?"
                )
            time.sleep(0.5)


def _client(settings: Settings) -> httpx.Client:
    return httpx.Client(base_url=settings.kafka_connect_url, timeout=30.0)


def apply_connector(settings: Settings) -> None:
    """Create the connector, or update it to this config (PUT is idempotent)."""
    name = settings.cdc_connector_name
    with _client(settings) as client:
        response = client.put(f"/connectors/{name}/config", json=connector_config(settings))
    if response.status_code >= 400:
        raise ConnectError(f"Kafka Connect refused connector {name}: {response.text}")


def connector_status(settings: Settings) -> dict | None:
    """Connect's status of the connector and its tasks, or None if it does not exist."""
    with _client(settings) as client:
        response = client.get(f"/connectors/{settings.cdc_connector_name}/status")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def is_running(status: dict | None) -> bool:
    return bool(
        status
        and status["connector"]["state"] == RUNNING
        and status["tasks"]
        and all(task["state"] == RUNNING for task in status["tasks"])
    )


def wait_running(settings: Settings, timeout_s: float = 120.0) -> dict:
    """Poll until the connector and its task run; a failed task raises with its trace."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = connector_status(settings)
        if is_running(status):
            return status
        failed = [t for t in (status or {}).get("tasks", []) if t["state"] == "FAILED"]
        if failed:
            trace = failed[0].get("trace", "").splitlines()[:5]
            raise ConnectError(
                f"connector {settings.cdc_connector_name} task failed: " + "\n".join(trace)
            )
        time.sleep(0.5)
    raise ConnectError(
        f"connector {settings.cdc_connector_name} not running after {timeout_s:.0f} s: {status}"
    )
