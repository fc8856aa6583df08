"""Trino over the lake: queries through its HTTP protocol, and the lake's tables registered
in the Delta catalog.

Queries speak Trino's client protocol directly (POST the statement, follow ``nextUri``), so
the base package needs no Trino client. Registration is idempotent: a table whose Delta log
exists and that the catalog does not know yet is registered (``system.register_table``);
the DAGs run it after every publication, ``tunelake up`` once Trino is ready.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from tunelake.clients import s3_client
from tunelake.settings import Settings

log = logging.getLogger(__name__)


class TrinoError(RuntimeError):
    """Trino refused or failed a statement (its message is kept)."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list]


def query(settings: Settings, sql: str, timeout_s: float = 300.0) -> QueryResult:
    """Run one statement and return every row (values as Trino's JSON gives them)."""
    headers = {"X-Trino-User": settings.trino_user, "X-Trino-Catalog": settings.trino_catalog}
    columns: list[dict] = []
    rows: list[list] = []
    with httpx.Client(base_url=settings.trino_url, headers=headers, timeout=timeout_s) as http:
        page = http.post("/v1/statement", content=sql.encode()).raise_for_status().json()
        while True:
            if "error" in page:
                error = page["error"]
                raise TrinoError(f"{error.get('errorName')}: {error.get('message')}")
            columns = columns or page.get("columns", [])
            rows += page.get("data", [])
            if "nextUri" not in page:
                break
            page = http.get(page["nextUri"]).raise_for_status().json()
    return QueryResult([c["name"] for c in columns], [c["type"] for c in columns], rows)


def ready(settings: Settings) -> bool:
    """Trino answers and has finished starting."""
    try:
        info = httpx.get(f"{settings.trino_url}/v1/info", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return info.get("starting") is False


@dataclass(frozen=True)
class LakeTable:
    schema: str
    name: str
    location: str  # s3://bucket/path


def schema_of(settings: Settings, layer: str) -> str:
    """The catalog schema of a lake layer (``bronze``, ``silver``, ``audit``) for these
    settings."""
    return f"{settings.trino_schema_prefix}{layer}"


LAYERS = ("bronze", "silver", "audit")


def _audit_tables(settings: Settings, s3) -> list[LakeTable]:
    """Every table under ``audit/`` (quality results, privacy deletions): whoever writes
    one there gets it registered, without this module naming it."""
    prefix = settings.audit_path("").removeprefix(f"s3a://{settings.lakehouse_bucket}/")
    listed = s3.list_objects_v2(Bucket=settings.lakehouse_bucket, Prefix=prefix, Delimiter="/")
    names = [p["Prefix"].removeprefix(prefix).rstrip("/") for p in listed.get("CommonPrefixes", [])]
    return [LakeTable(schema_of(settings, "audit"), n, settings.audit_path(n)) for n in names]


def lake_tables(settings: Settings) -> list[LakeTable]:
    """Every Bronze, Silver and audit table of the lake (quarantine included) that has a
    Delta log."""
    from ingestion.streams import STREAMS
    from spark_jobs.silver.tables import BRONZE_TRACK_METADATA, DIMENSIONS, SILVER_TABLES

    bronze, silver = schema_of(settings, "bronze"), schema_of(settings, "silver")
    topics = [spec.topic(settings) for spec in STREAMS.values()]
    s3 = s3_client(settings)
    candidates = [
        *(LakeTable(bronze, topic, settings.bronze_path(topic)) for topic in topics),
        *(
            LakeTable(bronze, f"{topic}_quarantine", settings.quarantine_path(topic))
            for topic in topics
        ),
        *(LakeTable(silver, name, t.path(settings)) for name, t in SILVER_TABLES.items()),
        LakeTable(bronze, BRONZE_TRACK_METADATA, settings.bronze_path(BRONZE_TRACK_METADATA)),
        *(LakeTable(silver, name, settings.silver_path(name)) for name in DIMENSIONS),
        *_audit_tables(settings, s3),
    ]
    present = []
    for table in candidates:
        location = table.location.replace("s3a://", "s3://", 1)
        bucket, _, key = location.removeprefix("s3://").partition("/")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}/_delta_log/", MaxKeys=1)
        if listed.get("KeyCount", 0):
            present.append(LakeTable(table.schema, table.name, location))
    return present


def register_tables(settings: Settings) -> list[str]:
    """Register the lake's tables the catalog does not know yet; returns what it registered."""
    catalog = settings.trino_catalog
    tables = lake_tables(settings)
    registered = []
    for schema in sorted({t.schema for t in tables}):
        query(settings, f'CREATE SCHEMA IF NOT EXISTS {catalog}."{schema}"')
        known = {
            row[0]
            for row in query(
                settings,
                f"SELECT table_name FROM {catalog}.information_schema.tables "
                f"WHERE table_schema = '{schema}'",
            ).rows
        }
        for table in (t for t in tables if t.schema == schema and t.name not in known):
            query(
                settings,
                f"CALL {catalog}.system.register_table(schema_name => '{schema}', "
                f"table_name => '{table.name}', table_location => '{table.location}')",
            )
            registered.append(f"{schema}.{table.name}")
    if registered:
        log.info("registered in Trino: %s", ", ".join(registered))
    return registered


def forget_schemas(settings: Settings) -> None:
    """Unregister the tables of this lake's schemas (``trino_schema_prefix``) and drop the
    schemas: for throwaway lakes (tests, benchmarks); the data stays where it is."""
    catalog = settings.trino_catalog
    schemas = {row[0] for row in query(settings, f"SHOW SCHEMAS FROM {catalog}").rows}
    ours = {schema_of(settings, layer) for layer in LAYERS}
    for schema in sorted(ours & schemas):
        for (table,) in query(settings, f'SHOW TABLES FROM {catalog}."{schema}"').rows:
            query(settings, f"CALL {catalog}.system.unregister_table('{schema}', '{table}')")
        query(settings, f'DROP SCHEMA {catalog}."{schema}"')
