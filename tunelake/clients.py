"""Client factories shared by every component, configured from settings alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelake.settings import Settings

if TYPE_CHECKING:
    import psycopg
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from mypy_boto3_s3 import S3Client


def s3_client(settings: Settings, *, connect_timeout: float = 10) -> S3Client:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        config=Config(
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
            connect_timeout=connect_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def arrow_s3_filesystem(settings: Settings):
    """pyarrow's S3 filesystem on the lakehouse store (for Spark-free reads of Parquet)."""
    from pyarrow import fs

    return fs.S3FileSystem(
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        endpoint_override=settings.s3_endpoint_url,
        region=settings.s3_region,
        scheme="https" if settings.s3_uses_ssl else "http",
    )


def delta_storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs's options for the lakehouse store."""
    return {
        "AWS_ENDPOINT_URL": settings.s3_endpoint_url,
        "AWS_REGION": settings.s3_region,
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
        "AWS_ALLOW_HTTP": str(not settings.s3_uses_ssl).lower(),
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not settings.s3_path_style).lower(),
    }


def delta_rs_uri(uri: str) -> str:
    """A table ``uri`` as the settings build it (``s3a://``, Spark's) as delta-rs names it."""
    return uri.replace("s3a://", "s3://", 1)


def delta_table(settings: Settings, uri: str):
    """A Delta table on the object store read with delta-rs (no JVM): ``uri`` as the
    settings build it (``s3a://...``)."""
    from deltalake import DeltaTable

    return DeltaTable(delta_rs_uri(uri), storage_options=delta_storage_options(settings))


def kafka_auth(settings: Settings) -> dict[str, str]:
    """kafka-python's authentication options: none on a plain listener, SCRAM otherwise."""
    if not settings.kafka_uses_sasl:
        return {}
    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
    }


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """The Spark Kafka source's connection options (``kafka.``-prefixed consumer configs)."""
    options = {"kafka.bootstrap.servers": settings.kafka_bootstrap_servers}
    if settings.kafka_uses_sasl:
        # JAAS quoting: the user name and password are double-quoted, backslash-escaped.
        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        options |= {
            "kafka.security.protocol": settings.kafka_security_protocol,
            "kafka.sasl.mechanism": settings.kafka_sasl_mechanism,
            "kafka.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f"username={quoted(settings.kafka_sasl_username)} "
                f"password={quoted(settings.kafka_sasl_password.get_secret_value())};"
            ),
        }
    return options


def kafka_admin(settings: Settings, *, timeout_ms: int = 10_000) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        **kafka_auth(settings),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="tunelake-admin",
        request_timeout_ms=timeout_ms,
        # kafka-python otherwise keeps retrying an unreachable bootstrap server for 30 s.
        bootstrap_timeout_ms=timeout_ms,
    )


def kafka_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """A producer that reports success only once every in-sync replica has the record."""
    from kafka import KafkaProducer

    config = (
        kafka_auth(settings)
        | {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
        }
        | overrides
    )
    return KafkaProducer(**config)


def kafka_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: object
) -> KafkaConsumer:
    from kafka import KafkaConsumer

    config = (
        kafka_auth(settings)
        | {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "group_id": group_id,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
        }
        | overrides
    )
    return KafkaConsumer(*topics, **config)


def postgres_connect(
    settings: Settings, database: str | None = None, *, connect_timeout: int = 5
) -> psycopg.Connection:
    import psycopg

    return psycopg.connect(
        host=settings.postgres_host,
        port=settings.postgres_port,
        user=settings.postgres_user,
        password=settings.postgres_password.get_secret_value(),
        dbname=database or settings.postgres_db,
        connect_timeout=connect_timeout,
        autocommit=True,
    )
