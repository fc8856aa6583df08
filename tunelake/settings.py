"""One typed settings object for every tunelake component.

Values come from environment variables prefixed ``TUNELAKE_`` (and from a ``.env`` file in
the working directory, if present). Defaults point at the local stack started by
``tunelake up``. Secrets are ``SecretStr``: their local defaults are documented in
``.env.example`` and refused outside ``TUNELAKE_ENVIRONMENT=local``.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlparse

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_ROOT.parent


def _default_state_dir() -> Path:
    # A source checkout keeps its stack state next to the code, so two clones never share
    # data dirs or pid files; an installed package falls back to the user's state dir.
    if (SOURCE_ROOT / "pyproject.toml").is_file():
        return SOURCE_ROOT / ".tunelake"
    return Path.home() / ".local" / "state" / "tunelake"


class Environment(StrEnum):
    LOCAL = "local"
    STAGING = "staging"
    PRODUCTION = "production"


LOCAL_SECRET_DEFAULTS = {
    "s3_secret_key": "tunelake-local-secret",
    "postgres_password": "tunelake-local-pg",
    "api_keys": "tunelake-local-key",
}
# The local stack's Airflow login never reaches a cluster (production Airflow is configured by
# its own chart), so it is not a deployment secret: outside `local` it defaults to empty (no
# login) instead of the documented local value, which is refused there like the others.
LOCAL_AIRFLOW_ADMIN_PASSWORD = "tunelake-local-airflow"


class SparkDeploy(StrEnum):
    """How Airflow's Spark tasks start a job."""

    # spark-submit from the task's own process (the local stack, compose).
    SUBMIT = "submit"
    # A SparkApplication on the Spark image, from the template the chart renders.
    KUBERNETES = "kubernetes"


class Workload(StrEnum):
    """Which process these settings are for: on Kubernetes each workload is given only the
    secrets it uses (WORKLOAD_SECRETS), and the others stay empty instead of falling back
    to their local defaults. ``all`` (the default) is every secret, as on the local stack."""

    ALL = "all"
    SERVICE = "service"
    SPARK = "spark"
    AIRFLOW = "airflow"
    JUPYTER = "jupyter"


WORKLOAD_SECRETS: dict[Workload, frozenset[str]] = {
    Workload.SERVICE: frozenset({"s3_secret_key", "api_keys", "kafka_sasl_password"}),
    # Bronze also holds its topic leases in PostgreSQL.
    Workload.SPARK: frozenset({"s3_secret_key", "postgres_password", "kafka_sasl_password"}),
    # With TUNELAKE_SPARK_DEPLOY=kubernetes Airflow only creates SparkApplications.
    Workload.AIRFLOW: frozenset(),
    Workload.JUPYTER: frozenset({"s3_secret_key"}),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TUNELAKE_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Environment = Environment.LOCAL
    workload: Workload = Workload.ALL

    # Local stack: state (data, logs, pid files) per checkout; downloads shared per user.
    state_dir: Path = Field(default_factory=_default_state_dir)
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "tunelake")

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    kafka_topic_partitions: int = 3
    topic_recommendation_events: str = "recommendation_events"
    topic_listening_history: str = "user_listening_history"
    topic_recommendation_feedback: str = "recommendation_feedback"
    topic_user_profiles: str = "user_profiles"
    # Client authentication: PLAINTEXT on the local stack and compose; SASL (SCRAM, the
    # Strimzi KafkaUser's password) on Kubernetes.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")

    # Schema registry (Confluent-compatible REST API)
    schema_registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    # Kafka Connect (Debezium CDC of PostgreSQL `user_profiles`). Its Avro converter is
    # Apicurio's, which speaks the registry's own API (v2), not the Confluent one.
    kafka_connect_url: str = "http://127.0.0.1:8083"
    connect_registry_url: str = "http://127.0.0.1:8081/apis/registry/v2"
    cdc_connector_name: str = "user-profiles-cdc"
    cdc_slot_name: str = "tunelake_user_profiles"
    # Trino: the analysts' SQL engine over the lake (catalog `delta`). Bronze and Silver
    # tables are registered in the schemas `<prefix>bronze` and `<prefix>silver`.
    trino_url: str = "http://127.0.0.1:8090"
    trino_user: str = "tunelake"
    trino_catalog: str = "delta"
    trino_schema_prefix: str = ""

    # S3 object store (SeaweedFS locally, MinIO in docker-compose, any S3 in production)
    s3_endpoint_url: str = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: str = "tunelake"
    s3_secret_key: SecretStr = SecretStr(LOCAL_SECRET_DEFAULTS["s3_secret_key"])
    s3_path_style: bool = True
    lakehouse_bucket: str = "lakehouse"
    checkpoints_bucket: str = "checkpoints"
    models_bucket: str = "models"

    # PostgreSQL (user profiles for CDC, registry storage, Airflow metadata)
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "tunelake"
    postgres_password: SecretStr = SecretStr(LOCAL_SECRET_DEFAULTS["postgres_password"])
    postgres_db: str = "tunelake"
    registry_db: str = "registry"

    # Airflow of the local stack (production Airflow is configured by its own chart).
    airflow_port: int = 8080
    airflow_db: str = "airflow"
    airflow_admin_user: str = "admin"
    airflow_admin_password: SecretStr = SecretStr(LOCAL_AIRFLOW_ADMIN_PASSWORD)

    # Recommendation service
    service_host: str = "127.0.0.1"
    service_port: int = 8000
    # Comma-separated keys for the X-API-Key header: read-write keys open every route,
    # read-only keys only the GET routes. No read-only key by default.
    api_keys: SecretStr = SecretStr(LOCAL_SECRET_DEFAULTS["api_keys"])
    api_read_keys: SecretStr = SecretStr("")
    # Per-key token bucket: sustained requests a second and burst; beyond it, 429.
    api_rate_per_second: float = 100.0
    api_rate_burst: int = 200
    # Largest request body in bytes, whatever its transfer encoding; beyond it, 413.
    api_max_body_bytes: int = 1_048_576
    # Most-popular fallback before Silver exists: a catalog object in the lakehouse bucket.
    catalog_key: str = "reference/track_catalog.json"

    # Events: no listen or event may be older than this (UTC midnight); the API answers 422
    # and Bronze quarantines older ones (see ingestion/validity.py).
    earliest_event_date: date = date(2000, 1, 1)

    # Spark
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = 4
    # Joins broadcast the smaller side up to this size: a few days of impressions (the
    # attribution join's small side) fit, and save shuffling every listen.
    spark_broadcast_join_threshold: str = "64MB"
    # Bronze streaming: records per micro-batch and topic, and the follow-mode trigger.
    bronze_max_offsets_per_trigger: int = 500_000
    bronze_trigger_seconds: float = 1.0
    # One Bronze writer per topic: how long a second writer waits for the lease (a
    # PostgreSQL advisory lock) before it gives up with the holder's name.
    bronze_lease_wait_seconds: float = 30.0
    # Prometheus endpoint of `tunelake bronze --follow` (stream errors); 0: none.
    bronze_metrics_port: int = 0
    # Comma-separated jars for spark.jars; empty means "the set `tunelake up` resolved"
    # in local mode, and "jars are baked into the image" on a cluster.
    spark_jars: str = ""
    # How Airflow's Spark tasks run: spark-submit (local stack, compose) or a
    # SparkApplication (Kubernetes) built from spark_application_template, the JSON the
    # chart renders with the same spec as its own applications.
    spark_deploy: SparkDeploy = SparkDeploy.SUBMIT
    spark_application_template: str = ""
    # Further Spark settings (a JSON object of strings), applied after tunelake's own: a
    # cluster's own tuning (executor memory and cores, shuffle partitions, ...).
    spark_extra_conf: dict[str, str] = Field(default_factory=dict)

    # Recommendation model (ALS): the hyper-parameter search's time budget; the gate
    # promotes a candidate only when a paired bootstrap over at least
    # model_gate_min_users users puts its NDCG@10 gain over each baseline above zero
    # at model_gate_confidence (ml/gate.py).
    model_search_seconds: float = 600.0
    model_gate_min_users: int = Field(default=30, ge=1)
    model_gate_confidence: float = Field(default=0.95, gt=0, lt=1)
    # The service: how often it looks for a newly promoted (or rolled-back) model, and the
    # most-popular fallback's window (the last N days of Silver track_daily_stats).
    model_refresh_seconds: float = 15.0
    popular_window_days: int = 30

    # Track metadata (the track_metadata DAG): `offline` answers for the generated track
    # catalog from a bundled file (no network; the local default), `musicbrainz` asks
    # MusicBrainz's web service (base URL settable, so a test server can stand in), which
    # wants at most one request a second and a contact in the User-Agent. A track's
    # metadata older than metadata_stale_days is fetched again.
    metadata_source: Literal["offline", "musicbrainz"] = "offline"
    metadata_musicbrainz_url: str = "https://musicbrainz.org/ws/2"
    metadata_contact: str = "https://github.com/tunelake/tunelake"
    metadata_requests_per_second: float = 1.0
    metadata_timeout_seconds: float = 10.0
    metadata_max_attempts: int = 5
    metadata_backoff_seconds: float = 1.0
    metadata_stale_days: int = 30
    # Another catalog file for the offline source (empty: the one shipped in the wheel).
    metadata_offline_catalog: str = ""

    @model_validator(mode="before")
    @classmethod
    def _no_local_airflow_login_by_default(cls, data: object) -> object:
        if isinstance(data, dict) and str(data.get("environment", "local")) != "local":
            data.setdefault("airflow_admin_password", "")
            # A secret this workload does not use is not given to it: empty, never the
            # local default (which would be refused below).
            workload = Workload(str(data.get("workload", Workload.ALL.value)))
            if workload is not Workload.ALL:
                for name in set(LOCAL_SECRET_DEFAULTS) - WORKLOAD_SECRETS[workload]:
                    data.setdefault(name, "")
        return data

    @model_validator(mode="after")
    def _kafka_sasl_needs_a_login(self) -> Self:
        uses_secret = self.workload is Workload.ALL or (
            "kafka_sasl_password" in WORKLOAD_SECRETS[self.workload]
        )
        login = self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        if self.kafka_uses_sasl and uses_secret and not login:
            raise ValueError(
                f"TUNELAKE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "TUNELAKE_KAFKA_SASL_USERNAME and TUNELAKE_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _kubernetes_spark_needs_a_template(self) -> Self:
        if self.spark_deploy is SparkDeploy.KUBERNETES:
            self.spark_application()  # raises with the reason
        return self

    @model_validator(mode="after")
    def _no_local_secrets_outside_local(self) -> Self:
        if self.environment is Environment.LOCAL:
            return self
        # Any documented local value, whole or as one item of a comma-separated list.
        local_values = {*LOCAL_SECRET_DEFAULTS.values(), LOCAL_AIRFLOW_ADMIN_PASSWORD}
        still_default = [
            f"TUNELAKE_{name.upper()}"
            for name, value in self
            if isinstance(value, SecretStr) and local_values & _secret_items(value)
        ]
        if still_default:
            raise ValueError(
                f"environment={self.environment.value} needs real secrets; "
                f"still the documented local defaults: {', '.join(still_default)}"
            )
        return self

    # Derived values: computed here once so no component rebuilds a path by hand.
    @property
    def topics(self) -> tuple[str, ...]:
        return (
            self.topic_recommendation_events,
            self.topic_listening_history,
            self.topic_recommendation_feedback,
            self.topic_user_profiles,
        )

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.lakehouse_bucket, self.checkpoints_bucket, self.models_bucket)

    @property
    def service_url(self) -> str:
        return f"http://{self.service_host}:{self.service_port}"

    @property
    def client_api_key(self) -> str:
        """The key tunelake's own clients (generator, demo, benchmarks) send."""
        return sorted(self.api_key_set())[0]

    def api_key_set(self) -> frozenset[str]:
        """Read-write keys."""
        return _secret_items(self.api_keys) - {""}

    def api_read_key_set(self) -> frozenset[str]:
        """Read-only keys (a key in both lists is read-write)."""
        return _secret_items(self.api_read_keys) - {""} - self.api_key_set()

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    def spark_application(self) -> dict:
        """The SparkApplication template (``spark_application_template``) as a dict."""
        try:
            template = json.loads(self.spark_application_template)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"TUNELAKE_SPARK_APPLICATION_TEMPLATE is not JSON ({exc}); with "
                "TUNELAKE_SPARK_DEPLOY=kubernetes it holds the chart's SparkApplication template"
            ) from None
        if not isinstance(template, dict) or template.get("kind") != "SparkApplication":
            raise ValueError("TUNELAKE_SPARK_APPLICATION_TEMPLATE is not a SparkApplication")
        return template

    @property
    def is_local_spark(self) -> bool:
        return self.spark_master.startswith("local")

    def classpath_file(self, jar_set: str) -> Path:
        """Where ``tunelake install`` writes a resolved jar set (one jar path a line)."""
        return self.state_dir / "jars" / f"{jar_set}.classpath"

    def jar_set(self, name: str) -> list[str]:
        """The jars of a set ``tunelake install`` resolved (its file's first line is a stamp)."""
        path = self.classpath_file(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"jar set {name!r} is not resolved ({path} missing): run `tunelake up` or "
                "`make install` first"
            )
        return [line for line in path.read_text().splitlines()[1:] if line]

    def spark_jar_list(self) -> list[str]:
        """The jars Spark loads: ``spark_jars``; else, in local mode, the set ``tunelake
        install`` resolved; else none (a cluster's image has them)."""
        if self.spark_jars:
            return [jar for jar in self.spark_jars.split(",") if jar]
        return self.jar_set("spark") if self.is_local_spark else []

    @property
    def s3_uses_ssl(self) -> bool:
        return urlparse(self.s3_endpoint_url).scheme == "https"

    def lakehouse_uri(self, *parts: str) -> str:
        return "/".join((f"s3a://{self.lakehouse_bucket}", *parts))

    def bronze_path(self, topic: str) -> str:
        return self.lakehouse_uri("bronze", topic)

    def quarantine_path(self, topic: str) -> str:
        return self.lakehouse_uri("bronze", "_quarantine", topic)

    def silver_path(self, table: str) -> str:
        return self.lakehouse_uri("silver", table)

    def audit_path(self, table: str) -> str:
        """An append-only record the platform keeps of itself (quality results, privacy
        deletions): Delta tables Trino registers in the ``audit`` schema."""
        return self.lakehouse_uri("audit", table)

    def checkpoint_path(self, job: str) -> str:
        return f"s3a://{self.checkpoints_bucket}/{job}"

    def postgres_dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password.get_secret_value()}"
            f"@{self.postgres_host}:{self.postgres_port}/{database or self.postgres_db}"
        )


def _secret_items(secret: SecretStr) -> frozenset[str]:
    """A secret's comma-separated items, stripped."""
    return frozenset(item.strip() for item in secret.get_secret_value().split(","))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
