"""docker-compose.yml: loaded for real by compose-go (schema, interpolation, consistency),
then checked against the local stack and tunelake's settings.

No Docker engine is involved: tools/composecheck prints the project exactly as Compose
resolves it, and these tests read that.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from deploy_support import parse_properties, pom_dependency_version, run_tool

from tunelake.settings import LOCAL_SECRET_DEFAULTS, Settings
from tunelake_ops.stack.services import SERVICE_TYPES

pytestmark = pytest.mark.unit

COMPOSE_FILE = "docker-compose.yml"
TWINS_KEY = "x-tunelake-local-twins"


def load_compose(composecheck: Path, repo_root: Path, env: dict[str, str] | None = None) -> dict:
    command: list[str | Path] = [composecheck, "-f", repo_root / COMPOSE_FILE]
    for name, value in (env or {}).items():
        command += ["-env", f"{name}={value}"]
    return json.loads(run_tool(command).stdout)


@pytest.fixture(scope="module")
def project(tool: Callable[[str], Path], repo_root: Path) -> dict:
    """The compose project with no variables set: every documented default applies."""
    return load_compose(tool("composecheck"), repo_root)


def tunelake_env(service: dict) -> dict[str, str]:
    return {
        k: v for k, v in (service.get("environment") or {}).items() if k.startswith("TUNELAKE_")
    }


def test_compose_go_rejects_what_compose_would_reject(
    tool: Callable[[str], Path], tmp_path: Path
) -> None:
    # The checker itself must fail on an invalid file, or the passing tests prove nothing.
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(
        "services:\n  a:\n    image: busybox:1.37\n    depends_on: [missing]\n"
        "  b:\n    image: busybox:1.37\n    helthcheck: {test: [CMD, 'true']}\n"
    )
    result = run_tool([tool("composecheck"), "-f", bad], check=False)
    assert result.returncode == 1
    assert "helthcheck" in result.stderr


def test_compose_file_is_valid(project: dict) -> None:
    assert project["name"] == "tunelake"
    assert {"kafka", "minio", "postgres", "registry", "service"} <= set(project["services"])


def test_every_local_service_has_a_compose_twin(project: dict) -> None:
    twins = project[TWINS_KEY]
    local_names = {kind.__dataclass_fields__["name"].default for kind in SERVICE_TYPES}
    assert all(local_names), "every local service class names itself"
    assert set(twins) == local_names, (
        f"{TWINS_KEY} must map exactly the local services {sorted(local_names)}; "
        f"it maps {sorted(twins)}"
    )
    missing = {local: twin for local, twin in twins.items() if twin not in project["services"]}
    assert not missing, f"twins that are not compose services: {missing}"


def test_tunelake_variables_are_settings_fields(
    project: dict, settings_env_names: dict[str, str]
) -> None:
    unknown = {
        f"{name}/{var}"
        for name, service in project["services"].items()
        for var in tunelake_env(service)
        if var not in settings_env_names
    }
    assert not unknown, f"TUNELAKE_* variables that tunelake.settings does not read: {unknown}"


def test_each_tunelake_container_gets_valid_settings_pointing_at_compose_services(
    project: dict, settings_from_env: Callable[[dict[str, str]], object]
) -> None:
    services = project["services"]
    checked = []
    for name, service in services.items():
        env = tunelake_env(service)
        if "TUNELAKE_KAFKA_BOOTSTRAP_SERVERS" not in env:
            continue  # one-shot helpers and third-party servers get only what they use
        settings = settings_from_env(env)
        kafka_host = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[0]
        assert kafka_host in services, f"{name}: Kafka host {kafka_host}"
        assert urlparse(settings.s3_endpoint_url).hostname in services, name
        assert urlparse(settings.schema_registry_url).hostname in services, name
        assert settings.schema_registry_url.endswith("/apis/ccompat/v7"), name
        assert settings.postgres_host in services, name
        assert settings.spark_master == "spark://spark-master:7077", name
        checked.append(name)
    service = services["service"]
    assert service["command"] == ["tunelake", "serve"]
    published = {p["target"] for p in service["ports"]}
    assert service["environment"]["TUNELAKE_SERVICE_HOST"] == "0.0.0.0"
    assert {int(service["environment"]["TUNELAKE_SERVICE_PORT"])} == published
    assert {"service", "spark-master", "spark-worker", "airflow-scheduler"} <= set(checked)


def test_secret_defaults_are_the_documented_local_ones(project: dict) -> None:
    # Compose's fallbacks must be exactly what tunelake accepts only in `local`, so a
    # compose stack started without real secrets can never pass as staging/production.
    env = project["services"]["service"]["environment"]
    assert env["TUNELAKE_ENVIRONMENT"] == "local"
    for field, local_default in LOCAL_SECRET_DEFAULTS.items():
        assert env[f"TUNELAKE_{field.upper()}"] == local_default


def test_secrets_come_from_the_environment_everywhere(
    tool: Callable[[str], Path], repo_root: Path
) -> None:
    # Set each secret once: every service that uses it must see that value, none the default.
    secret = {
        "TUNELAKE_S3_SECRET_KEY": "s3-" + "x" * 20,
        "TUNELAKE_POSTGRES_PASSWORD": "pg-" + "y" * 20,
        "TUNELAKE_API_KEYS": "key-" + "z" * 20,
    }
    assert {name.removeprefix("TUNELAKE_").lower() for name in secret} == set(
        LOCAL_SECRET_DEFAULTS
    ), "cover every secret setting"
    services = load_compose(tool("composecheck"), repo_root, secret)["services"]
    s3, pg, api_keys = secret.values()
    assert services["service"]["environment"]["TUNELAKE_API_KEYS"] == api_keys
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == s3
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == pg
    assert services["registry"]["environment"]["APICURIO_DATASOURCE_PASSWORD"] == pg
    assert services["connect"]["environment"]["TUNELAKE_POSTGRES_PASSWORD"] == pg
    airflow_db = services["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert f":{pg}@postgres:5432/" in airflow_db
    for name, service in services.items():
        for var, value in (service.get("environment") or {}).items():
            assert value not in LOCAL_SECRET_DEFAULTS.values(), f"{name}/{var} kept a default"
            assert not any(default in value for default in LOCAL_SECRET_DEFAULTS.values()), (
                f"{name}/{var} embeds a local default secret"
            )


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(
    project: dict,
) -> None:
    services = project["services"]
    one_shots = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shots == {"kafka-init", "minio-init", "airflow-init", "cdc-init"}
    awaited = {
        target
        for service in services.values()
        for target, dep in (service.get("depends_on") or {}).items()
        if dep["condition"] == "service_completed_successfully"
    }
    assert awaited <= one_shots, f"awaited to finish but restarted: {awaited - one_shots}"
    for name, service in services.items():
        if name in one_shots:
            continue
        health = service.get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name} has no healthcheck"
    for name, service in services.items():
        for target, dep in (service.get("depends_on") or {}).items():
            if dep["condition"] == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits on {target}'s health"


def test_built_images_use_the_repo_dockerfiles(project: dict, repo_root: Path) -> None:
    built = {name: svc["build"] for name, svc in project["services"].items() if "build" in svc}
    assert {"service", "spark-master", "spark-worker", "airflow-scheduler"} <= set(built)
    for name, build in built.items():
        assert Path(build["context"]) == repo_root, name
        assert (repo_root / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"
        assert build["dockerfile"].startswith("docker/"), name


def test_local_service_twins_are_configured_like_the_local_stack(project: dict) -> None:
    services = project["services"]
    postgres_command = " ".join(services["postgres"]["command"])
    assert "wal_level=logical" in postgres_command  # Debezium CDC
    registry_env = services["registry"]["environment"]
    assert registry_env["APICURIO_STORAGE_KIND"] == "sql"
    assert registry_env["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert registry_env["APICURIO_DATASOURCE_URL"] == "jdbc:postgresql://postgres:5432/registry"
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # KRaft formats storage with this id: 16 bytes, URL-safe base64 without padding.
    cluster_id = kafka_env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_init_jobs_create_what_settings_name(project: dict) -> None:
    from tunelake.settings import Settings

    defaults = Settings(_env_file=None)
    services = project["services"]
    topics_env = services["kafka-init"]["environment"]
    assert sorted(v for k, v in topics_env.items() if k.startswith("TUNELAKE_TOPIC_")) == sorted(
        defaults.topics
    )
    buckets_env = services["minio-init"]["environment"]
    assert sorted(v for k, v in buckets_env.items() if k.endswith("_BUCKET")) == sorted(
        defaults.buckets
    )
    # The extra databases the postgres init script creates.
    assert services["postgres"]["environment"]["TUNELAKE_REGISTRY_DB"] == defaults.registry_db


def test_trino_mounts_the_catalog_the_helm_values_use(project: dict, repo_root: Path) -> None:
    mounts = {m["target"]: m["source"] for m in project["services"]["trino"]["volumes"]}
    source = Path(mounts["/etc/trino/catalog/delta.properties"])
    assert source == repo_root / "deploy" / "trino" / "catalog" / "delta.properties"
    trino_values = yaml.safe_load((repo_root / "deploy" / "values" / "trino.yaml").read_text())
    assert parse_properties(trino_values["catalogs"]["delta"]) == parse_properties(
        source.read_text()
    )


def test_grafana_provisions_the_files_the_helm_values_carry(project: dict, repo_root: Path) -> None:
    grafana = project["services"]["grafana"]
    mounts = {m["target"]: Path(m["source"]) for m in grafana["volumes"] if m["type"] == "bind"}
    provisioning = repo_root / "deploy" / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    providers = yaml.safe_load((provisioning / "dashboards" / "tunelake.yaml").read_text())
    (provider,) = providers["providers"]
    assert mounts[provider["options"]["path"]] == repo_root / "deploy" / "grafana" / "dashboards"
    datasources = yaml.safe_load((provisioning / "datasources" / "trino.yaml").read_text())
    (datasource,) = datasources["datasources"]
    env = grafana["environment"]
    assert datasource["type"] in env["GF_INSTALL_PLUGINS"].split(",")
    trino = urlparse(env["TRINO_URL"])
    assert trino.hostname in project["services"]
    assert {p["target"] for p in project["services"][trino.hostname]["ports"]} == {trino.port}


def _worker_properties(connect_env: dict[str, str]) -> dict[str, str]:
    """The worker properties the Debezium Connect image writes from CONNECT_* variables
    (the prefix dropped, lower-cased, underscores to dots)."""
    return {
        name.removeprefix("CONNECT_").lower().replace("_", "."): value
        for name, value in connect_env.items()
        if name.startswith("CONNECT_")
    }


def test_connect_twin_runs_the_pinned_debezium_with_apicurio_and_env_secrets(
    project: dict, repo_root: Path
) -> None:
    from ingestion.cdc import PASSWORD_ENV

    connect = project["services"]["connect"]
    debezium = pom_dependency_version("debezium", "debezium-connector-postgres")
    assert connect["image"] == f"quay.io/debezium/connect:{debezium}"
    env = connect["environment"]
    assert env["ENABLE_APICURIO_CONVERTERS"] == "true"
    properties = _worker_properties(env)
    assert properties["config.providers"] == "env"
    assert properties["config.providers.env.class"] == (
        "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
    )
    assert env[PASSWORD_ENV]
    # Distributed mode: state in Kafka topics of their own, never one of tunelake's.
    internal = {
        env["CONFIG_STORAGE_TOPIC"],
        env["OFFSET_STORAGE_TOPIC"],
        env["STATUS_STORAGE_TOPIC"],
    }
    assert len(internal) == 3 and not internal & set(Settings(_env_file=None).topics)
    for kind in ("config", "offset", "status"):
        assert properties[f"{kind}.storage.replication.factor"] == "1"  # one broker
    assert env["REST_HOST_NAME"] == "0.0.0.0"
    assert {p["target"] for p in connect["ports"]} == {8083}


def test_cdc_init_registers_connector_config_for_the_compose_services(
    project: dict, settings_from_env: Callable[[dict[str, str]], object]
) -> None:
    from ingestion.cdc import connector_config

    services = project["services"]
    init = services["cdc-init"]
    assert init["command"] == ["tunelake", "cdc", "apply"]
    # The Spark image: the one tunelake image with the PostgreSQL driver.
    assert init["image"] == services["spark-master"]["image"]
    assert {target: dep["condition"] for target, dep in init["depends_on"].items()} == {
        "postgres": "service_healthy",
        "kafka-init": "service_completed_successfully",
        "registry": "service_healthy",
        "connect": "service_healthy",
    }
    settings = settings_from_env(tunelake_env(init))
    connect_url = urlparse(settings.kafka_connect_url)
    assert connect_url.hostname == "connect"
    assert connect_url.port in {p["target"] for p in services["connect"]["ports"]}
    config = connector_config(settings)
    assert config["database.hostname"] == "postgres"
    assert config["database.port"] == "5432"
    # The topic kafka-init created, and the registry's own API on its container port.
    assert config["transforms.route.replacement"] in services["kafka-init"]["environment"].values()
    registry = urlparse(config["value.converter.apicurio.registry.url"])
    assert registry.hostname == "registry" and registry.path == "/apis/registry/v2"
    assert registry.port in {p["target"] for p in services["registry"]["ports"]}
    # Every ${env:NAME} the config names is in the worker's environment.
    referenced = {
        match for value in config.values() for match in re.findall(r"\$\{env:([A-Z_]+)\}", value)
    }
    assert referenced and referenced <= set(services["connect"]["environment"])
