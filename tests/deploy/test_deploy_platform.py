"""What the operators and external charts get: Strimzi Kafka resources, the MinIO tenant,
and the values for the official Airflow, Trino and Grafana charts.

These are only structurally checked: their CRD schemas (Strimzi, MinIO operator) and the
charts' values schemas are not available offline here. So every document must have
apiVersion/kind/metadata.name, and the checks below pin what tunelake relies on: names that
match tunelake.settings, and secrets referenced, never written down.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from deploy_support import parse_properties, secret_settings

from ingestion.cdc import HEARTBEAT_TOPIC
from tunelake.settings import Settings

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OPERATORS = DEPLOY / "operators"
VALUES = DEPLOY / "values"
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
SECRET_KEY_NAMES = re.compile(r"(password|secret|token|passwd|credential|fernet)", re.IGNORECASE)


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def strimzi() -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in load_all(OPERATORS / "strimzi-kafka.yaml"):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


@pytest.mark.parametrize("path", sorted(OPERATORS.glob("*.yaml")), ids=lambda p: p.name)
def test_operator_resources_are_well_formed(path: Path) -> None:
    docs = load_all(path)
    assert docs
    for doc in docs:
        assert re.fullmatch(r"[a-z0-9.-]+/v[0-9a-z]+", doc["apiVersion"]), doc["apiVersion"]
        assert doc["kind"][0].isupper()
        name = doc["metadata"]["name"]
        assert DNS_1123_SUBDOMAIN.match(name) and len(name) <= 63, name
        assert "namespace" not in doc["metadata"], "namespaces come from `kubectl apply -n`"
        assert isinstance(doc.get("spec"), dict) and doc["spec"], f"{name} has no spec"


def test_kafka_is_kraft_with_controller_and_broker_roles(strimzi: dict[str, list[dict]]) -> None:
    (kafka,) = strimzi["Kafka"]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert "zookeeper" not in kafka["spec"]
    roles = {role for pool in strimzi["KafkaNodePool"] for role in pool["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for doc in strimzi["KafkaNodePool"] + strimzi["KafkaTopic"]:
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    listeners = {item["name"]: item for item in kafka["spec"]["kafka"]["listeners"]}
    assert listeners["plain"]["port"] == 9092 and listeners["plain"]["type"] == "internal"
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["min.insync.replicas"] < sum(
        p["spec"]["replicas"] for p in strimzi["KafkaNodePool"]
    )


def test_kafka_topics_are_the_settings_topics(
    strimzi: dict[str, list[dict]], settings: Settings
) -> None:
    topics = {doc["spec"]["topicName"]: doc for doc in strimzi["KafkaTopic"]}
    assert set(topics) == {*settings.topics, HEARTBEAT_TOPIC}
    for name, doc in topics.items():
        if name != HEARTBEAT_TOPIC:
            assert doc["metadata"]["name"] == name.replace("_", "-")
        assert doc["spec"]["partitions"] >= 1 and doc["spec"]["replicas"] >= 3
    # Bronze keeps the profile history; a deleted user's last record must expire from Kafka.
    profiles = topics[settings.topic_user_profiles]["spec"]["config"]
    assert profiles["cleanup.policy"] == "delete" and profiles["retention.ms"] > 0


def test_kafka_bootstrap_service_is_what_the_chart_connects_to(
    strimzi: dict[str, list[dict]],
) -> None:
    (kafka,) = strimzi["Kafka"]
    chart_dir = DEPLOY / "helm" / "tunelake"
    for values in ("values-staging.yaml", "values-production.yaml"):
        bootstrap = yaml.safe_load((chart_dir / values).read_text())["settings"][
            "kafka_bootstrap_servers"
        ]
        # Strimzi names the bootstrap Service <cluster>-kafka-bootstrap.
        assert bootstrap.startswith(f"{kafka['metadata']['name']}-kafka-bootstrap."), values
        assert bootstrap.endswith(":9092"), values


def test_minio_tenant_holds_the_settings_buckets(settings: Settings) -> None:
    (tenant,) = load_all(OPERATORS / "minio-tenant.yaml")
    assert (tenant["apiVersion"], tenant["kind"]) == ("minio.min.io/v2", "Tenant")
    spec = tenant["spec"]
    # The settings' buckets, and the one Airflow writes its task logs to.
    airflow_logs = yaml.safe_load((VALUES / "airflow.yaml").read_text())["config"]["logging"]
    logs_bucket = airflow_logs["remote_base_log_folder"].removeprefix("s3://").split("/")[0]
    assert {bucket["name"] for bucket in spec["buckets"]} == {*settings.buckets, logs_bucket}
    assert spec["configuration"]["name"]  # root credentials: an existing Secret
    assert all(user["name"] for user in spec["users"])
    assert not re.search(r":latest$", spec["image"])
    for pool in spec["pools"]:
        assert pool["servers"] * pool["volumesPerServer"] >= 4, "erasure coding needs 4+ drives"
        assert pool["containerSecurityContext"]["runAsNonRoot"]


def test_trino_delta_catalog(settings: Settings) -> None:
    catalog = parse_properties((DEPLOY / "trino" / "catalog" / "delta.properties").read_text())
    assert catalog["connector.name"] == "delta_lake"
    assert catalog["hive.metastore"] == "file"
    assert (
        catalog["hive.metastore.catalog.dir"]
        == f"s3://{settings.lakehouse_bucket}/_trino_metastore"
    )
    assert catalog["fs.native-s3.enabled"] == "true"
    assert catalog["s3.path-style-access"] == "true"
    # Endpoint, region and credentials are the TUNELAKE_* variables, never literals.
    for key, field in {
        "s3.endpoint": "s3_endpoint_url",
        "s3.region": "s3_region",
        "s3.aws-access-key": "s3_access_key",
        "s3.aws-secret-key": "s3_secret_key",
    }.items():
        assert catalog[key] == f"${{ENV:TUNELAKE_{field.upper()}}}", key
        assert field in Settings.model_fields
    trino = yaml.safe_load((VALUES / "trino.yaml").read_text())
    assert parse_properties(trino["catalogs"]["delta"]) == catalog
    assert trino["image"]["tag"].isdigit() and int(trino["image"]["tag"]) <= 480, (
        "fs.native-s3.enabled is the property name up to Trino 480"
    )
    referenced = {e["name"] for e in trino["env"]} | {
        ref["configMapRef"]["name"] for ref in trino["envFrom"]
    }
    assert {"TUNELAKE_S3_ACCESS_KEY", "TUNELAKE_S3_SECRET_KEY", "tunelake-settings"} <= referenced
    for item in trino["env"]:
        assert "secretKeyRef" in item["valueFrom"], item["name"]


def test_airflow_values(settings: Settings) -> None:
    airflow = yaml.safe_load((VALUES / "airflow.yaml").read_text())
    assert airflow["executor"] == "KubernetesExecutor"
    assert airflow["airflowVersion"] == _locked_airflow_version()
    assert airflow["images"]["airflow"]["repository"].endswith("/tunelake-airflow")
    assert airflow["postgresql"]["enabled"] is False
    assert airflow["dags"]["gitSync"]["enabled"] is False, "DAGs are baked into the image"
    assert airflow["dags"]["persistence"]["enabled"] is False
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert airflow[key], key
    assert airflow["data"]["metadataSecretName"]
    assert "metadataConnection" not in airflow["data"], "the connection comes from a Secret"
    env_from = yaml.safe_load(airflow["extraEnvFrom"])
    assert env_from == [{"configMapRef": {"name": "tunelake-settings"}}]
    # Airflow's own secrets only: none of tunelake's (its tasks create SparkApplications,
    # whose pods get theirs).
    secret_env = {item["envName"] for item in airflow["secret"]}
    assert secret_env == {"AIRFLOW_CONN_TUNELAKE_LOGS"}
    assert not {f"TUNELAKE_{f.upper()}" for f in secret_settings()} & secret_env
    plain_env = {item["name"]: item["value"] for item in airflow["env"]}
    assert plain_env["TUNELAKE_WORKLOAD"] == "airflow"
    assert plain_env["TUNELAKE_SPARK_DEPLOY"] == "kubernetes"


def test_airflow_admin_comes_from_a_secret() -> None:
    airflow = yaml.safe_load((VALUES / "airflow.yaml").read_text())
    assert airflow["webserver"]["defaultUser"]["enabled"] is True
    job = airflow["createUserJob"]
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in job["env"]}
    assert {ref["name"] for ref in env.values()} == {"tunelake-airflow-admin"}
    script = " ".join(job["args"])
    for name in env:
        assert f'"${name}"' in script, name
    # The chart's default arguments carry a literal password: ours must replace them all.
    assert "defaultUser" not in script and "--password" in script
    assert airflow["config"]["core"]["auth_manager"].endswith("FabAuthManager")


def test_airflow_task_logs_go_to_the_object_store() -> None:
    airflow = yaml.safe_load((VALUES / "airflow.yaml").read_text())
    logging = airflow["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"].startswith("s3://")
    (conn,) = [s for s in airflow["secret"] if s["envName"].startswith("AIRFLOW_CONN_")]
    assert conn["envName"] == f"AIRFLOW_CONN_{logging['remote_log_conn_id'].upper()}"


def _locked_airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def test_grafana_values_match_the_provisioning_files() -> None:
    grafana = yaml.safe_load((VALUES / "grafana.yaml").read_text())
    assert grafana["admin"]["existingSecret"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "trino.yaml").read_text())
    assert grafana["datasources"]["datasources.yaml"] == datasources
    (datasource,) = datasources["datasources"]
    assert datasource["type"] in grafana["plugins"]
    # The URL is Grafana's environment, which each deployment sets to its Trino.
    assert datasource["url"] == "$__env{TRINO_URL}"
    assert grafana["env"]["TRINO_URL"] == "http://trino.tunelake.svc:8080"
    # Dashboards as code and their ConfigMap go together (the tunelake chart generates it
    # from deploy/grafana/dashboards; test_deploy_helm checks its content).
    assert sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    providers = yaml.safe_load((provisioning / "dashboards" / "tunelake.yaml").read_text())
    assert grafana["dashboardProviders"]["dashboardproviders.yaml"] == providers
    (provider,) = providers["providers"]
    assert grafana["dashboardsConfigMaps"] == {provider["name"]: "tunelake-grafana-dashboards"}
    # The chart mounts dashboardsConfigMaps.<provider> at /var/lib/grafana/dashboards/<provider>.
    assert provider["options"]["path"] == f"/var/lib/grafana/dashboards/{provider['name']}"


def _literal_secrets(node: object, path: str = "") -> list[str]:
    """Paths of keys that look like secrets and hold a literal (not a reference)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if (
                isinstance(key, str)
                and SECRET_KEY_NAMES.search(key)
                and isinstance(value, str | int)
                and not isinstance(value, bool)
            ):
                names_a_secret = re.search(r"(?i)(secretname|existingsecret)$", key)
                # e.g. passwordKey: password beside existingSecret: the key inside a Secret.
                selects_a_key = key.endswith("Key") and any(
                    re.search(r"(?i)(secretname|existingsecret)$", str(sibling)) for sibling in node
                )
                if not (names_a_secret or selects_a_key or str(value).startswith("${ENV:")):
                    found.append(where)
            found += _literal_secrets(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _literal_secrets(item, f"{path}[{index}]")
    return found


# Helm templates are not YAML until rendered: test_deploy_helm checks what they render.
@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*.yaml") if "templates" not in p.parts),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_no_literal_secrets_in_deploy_files(path: Path) -> None:
    found = [p for doc in load_all(path) for p in _literal_secrets(doc)]
    assert not found, f"{path.name}: literal secret values at {found}"


def test_the_secret_scan_finds_literals() -> None:
    assert _literal_secrets({"admin": {"password": "hunter22"}}) == [".admin.password"]
    assert _literal_secrets({"env": [{"name": "X", "secretKeyRef": {"name": "s"}}]}) == []
    assert _literal_secrets({"fernetKeySecretName": "airflow-fernet"}) == []
    assert _literal_secrets({"fernetKey": "c2VjcmV0"}) == [".fernetKey"]
    assert _literal_secrets({"existingSecret": "s", "passwordKey": "password"}) == []


def test_kafka_clients_log_in_as_their_own_users(strimzi: dict[str, list[dict]]) -> None:
    (kafka,) = strimzi["Kafka"]
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]
        peers = listener["networkPolicyPeers"]
        assert peers == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tunelake"}}}
        ]
    users = {doc["metadata"]["name"]: doc for doc in strimzi["KafkaUser"]}
    chart = yaml.safe_load((DEPLOY / "helm" / "tunelake" / "values.yaml").read_text())
    logins = chart["secrets"]["kafka"]
    # Each workload's login is a KafkaUser, whose password Strimzi writes into a Secret of
    # the user's name (key `password`).
    assert {login["username"] for login in logins.values()} == set(users)
    for login in logins.values():
        assert login["existingSecret"] == login["username"] and login["passwordKey"] == "password"
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", name

    def grants(user: str) -> dict[str, set[str]]:
        acls = users[user]["spec"]["authorization"]["acls"]
        return {
            f"{acl['resource']['type']}:{acl['resource'].get('name', '')}": set(acl["operations"])
            for acl in acls
        }

    settings = Settings(_env_file=None)
    service = grants(logins["service"]["username"])
    spark = grants(logins["spark"]["username"])
    published = {
        settings.topic_recommendation_events,
        settings.topic_listening_history,
        settings.topic_recommendation_feedback,
    }
    assert {k for k, ops in service.items() if "Write" in ops} == {f"topic:{t}" for t in published}
    assert not any("Read" in ops for ops in service.values())
    assert {k for k, ops in spark.items() if "Read" in ops and k.startswith("topic:")} == {
        f"topic:{t}" for t in settings.topics
    }
    assert not any("Write" in ops for ops in spark.values())
    assert "group:spark-kafka-source" in spark
    # Kafka Connect (Debezium) writes user_profiles and reads none of tunelake's topics.
    connect = grants(logins["connect"]["username"])
    ours = {f"topic:{t}" for t in settings.topics}
    assert {k for k, ops in connect.items() if "Write" in ops} & ours == {
        f"topic:{settings.topic_user_profiles}"
    }
    assert not {k for k, ops in connect.items() if "Read" in ops} & ours


def test_local_and_compose_kafka_stay_plain() -> None:
    settings = Settings(_env_file=None)
    assert settings.kafka_security_protocol == "PLAINTEXT" and not settings.kafka_uses_sasl
    from tunelake.clients import kafka_auth, spark_kafka_options

    assert kafka_auth(settings) == {}
    assert spark_kafka_options(settings) == {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers
    }


def test_sasl_settings_reach_every_kafka_client() -> None:
    from tunelake.clients import kafka_auth, spark_kafka_options

    settings = Settings(
        _env_file=None,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="tunelake-kafka-spark",
        kafka_sasl_password='p"a\\ss',
    )
    assert kafka_auth(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "tunelake-kafka-spark",
        "sasl_plain_password": 'p"a\\ss',
    }
    options = spark_kafka_options(settings)
    assert options["kafka.security.protocol"] == "SASL_PLAINTEXT"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    # JAAS: quoted values, the password's quote and backslash escaped.
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="tunelake-kafka-spark" password="p\\"a\\\\ss";'
    )
    with pytest.raises(ValueError, match="TUNELAKE_KAFKA_SASL_USERNAME"):
        Settings(_env_file=None, kafka_security_protocol="SASL_SSL")
