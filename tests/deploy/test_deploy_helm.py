"""The tunelake Helm chart: `helm lint` (with values.schema.json), `helm template` for each
environment, Kubernetes schema validation of what it renders, and the settings contract.

Schema-checked offline (kubernetes-validate's bundled OpenAPI schemas, strict: unknown
fields fail), for the oldest Kubernetes the chart supports and a current one: every
built-in kind the chart renders (BUILTIN_KINDS below).
Only structurally checked (apiVersion/kind/metadata.name, plus the field-level checks in
test_spark_applications_* and test_cdc_*): the Spark Operator CRDs SparkApplication and
ScheduledSparkApplication, and Strimzi's KafkaConnect and KafkaConnector, whose schemas are
not available offline here (the Spark operator's Go module is not served by the module
proxy, Strimzi publishes no Go module, and no PyPI package ships either's CRDs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    CHART,
    ENVIRONMENTS,
    KUBE_VERSIONS,
    helm_template,
    pod_specs,
    run_tool,
    secret_settings,
    spark_app_specs,
    walk_env,
)

from tunelake_ops.jobs import JOBS

pytestmark = pytest.mark.unit

BUILTIN_KINDS = {
    "ConfigMap",
    "Deployment",
    "HorizontalPodAutoscaler",
    "Job",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "Pod",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
}
CRD_KINDS = {
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"),
    ("sparkoperator.k8s.io/v1beta2", "ScheduledSparkApplication"),
    ("kafka.strimzi.io/v1", "KafkaConnect"),
    ("kafka.strimzi.io/v1", "KafkaConnector"),
}
SECRET_FIELDS = secret_settings()
SETTINGS_CONFIGMAP = "tunelake-settings"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_chart_declares_the_oldest_kubernetes_tested() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBE_VERSIONS[0]}-0"
    assert chart["apiVersion"] == "v2"


def values_files() -> list[Path | None]:
    return [None, *ENVIRONMENTS.values()]


@pytest.mark.parametrize("values", values_files(), ids=lambda v: v.name if v else "defaults")
def test_helm_lint_strict(tool: Callable[[str], Path], values: Path | None) -> None:
    command: list[str | Path] = [
        tool("helm"),
        "lint",
        CHART,
        "--strict",
        "--kube-version",
        KUBE_VERSIONS[-1],
    ]
    if values is not None:
        command += ["--values", values]
    run_tool(command)


def test_values_schema_rejects_bad_values(tool: Callable[[str], Path]) -> None:
    helm = tool("helm")
    bad_settings = [
        ["--set", "environment=local"],  # local defaults are for laptops
        ["--set", "settings.s3_secret_key=hunter22"],  # secrets never go in values
        ["--set", "secrets.postgres.existingSecret="],  # every secret is referenced
        ["--set", "registry.image.tag=latest"],
        ["--set", "spark.jobs.bronze-streaming.module=not a module"],
        ["--set", "cdc.build.image=ghcr.io/tunelake/tunelake-connect:latest"],
        ["--set", "cdc.debezium.sha512sum=not-a-digest"],
    ]
    for extra in bad_settings:
        result = run_tool([helm, "lint", CHART, *extra], check=False)
        assert result.returncode != 0, f"helm lint accepted {extra}"
        result = run_tool([helm, "template", "t", CHART, *extra], check=False)
        assert result.returncode != 0, f"helm template accepted {extra}"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_manifests_validate_against_kubernetes_schemas(
    tool: Callable[[str], Path], env: str, kube_version: str
) -> None:
    manifests = helm_template(tool("helm"), ENVIRONMENTS[env], kube_version=kube_version)
    schema_checked, structural = [], []
    for manifest in manifests:
        assert manifest.get("apiVersion") and manifest.get("kind"), manifest
        name = manifest.get("metadata", {}).get("name")
        assert name, f"{manifest['kind']} without metadata.name"
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CRD_KINDS:
            structural.append(manifest["kind"])
            continue
        assert manifest["kind"] in BUILTIN_KINDS, f"no validation planned for {key}"
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{env} {manifest['kind']}/{name} (k8s {kube_version}): {path}: {exc.message}",
                pytrace=False,
            )
        schema_checked.append(manifest["kind"])
    assert {"Deployment", "Service", "ConfigMap"} <= set(schema_checked)
    assert set(structural) == {kind for _, kind in CRD_KINDS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_values_in_rendered_manifests(rendered: dict[str, list[dict]], env: str) -> None:
    manifests = rendered[env]
    assert not [m for m in manifests if m["kind"] == "Secret"], "the chart must not own Secrets"
    sensitive = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|USERNAME)")
    containers = [c for m in manifests for spec in pod_specs(m) for c in spec["containers"]]
    spark_pods = [
        pod
        for m in manifests
        for spec in spark_app_specs(m)
        for pod in (spec["driver"], spec["executor"])
    ]
    env_items = walk_env(containers) + walk_env(spark_pods)
    assert env_items
    for item in env_items:
        # A Kafka user name is the KafkaUser's (public) name: Strimzi's Secret holds only
        # its password.
        if sensitive.search(item["name"]) and item["name"] != "TUNELAKE_KAFKA_SASL_USERNAME":
            assert "value" not in item, f"{item['name']} is a literal value"
            assert "secretKeyRef" in item.get("valueFrom", {}), f"{item['name']} not from a Secret"
    config_maps = [m for m in manifests if m["kind"] == "ConfigMap"]
    for config_map in config_maps:
        for key in config_map["data"]:
            assert not sensitive.search(key), f"{key} in ConfigMap {config_map['metadata']['name']}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_settings_configmap_is_valid_tunelake_settings(
    rendered: dict[str, list[dict]],
    env: str,
    settings_env_names: dict[str, str],
    settings_from_env: Callable[[dict[str, str]], object],
) -> None:
    (config_map,) = [m for m in rendered[env] if m["metadata"]["name"] == SETTINGS_CONFIGMAP]
    data = config_map["data"]
    unknown = set(data) - set(settings_env_names)
    assert not unknown, f"ConfigMap keys tunelake.settings does not read: {unknown}"
    assert not {settings_env_names[k] for k in data} & SECRET_FIELDS
    # What a pod sees: the ConfigMap plus the secret variables (stand-in values here).
    kafka_login = {"kafka_sasl_username", "kafka_sasl_password"}
    pod_env = {
        **data,
        **{f"TUNELAKE_{f.upper()}": f"{f}-from-secret" for f in SECRET_FIELDS | kafka_login},
    }
    settings = settings_from_env(pod_env)
    assert settings.environment.value == env
    assert settings.registry_db == "registry"
    assert settings.schema_registry_url == "http://tunelake-registry:8080/apis/ccompat/v7"
    assert not settings.is_local_spark


def tunelake_pods(manifests: list[dict]) -> list[tuple[str, dict]]:
    """(name, container) of every tunelake container and Spark driver/executor."""
    pods = [
        (m["metadata"]["name"], c)
        for m in manifests
        for spec in pod_specs(m)
        for c in spec["containers"]
        if "tunelake-" in c["image"]
    ]
    pods += [
        (f"{m['metadata']['name']}/{role}", spec[role])
        for m in manifests
        for spec in spark_app_specs(m)
        for role in ("driver", "executor")
    ]
    # The helm test pod needs no settings.
    return [(name, pod) for name, pod in pods if pod.get("command", [None])[0] != "python"]


def secret_vars(workload: str) -> set[str]:
    """The TUNELAKE_* variables a workload takes from Secrets: its secret settings (as
    tunelake.settings lists them) and the user names that go with them."""
    from tunelake.settings import WORKLOAD_SECRETS, Workload

    users = {
        "s3_secret_key": "s3_access_key",
        "postgres_password": "postgres_user",
        "kafka_sasl_password": "kafka_sasl_username",
    }
    fields = WORKLOAD_SECRETS[Workload(workload)]
    return {f"TUNELAKE_{f.upper()}" for f in fields | {users[f] for f in fields if f in users}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_tunelake_pod_gets_its_settings_and_only_its_own_secrets(
    rendered: dict[str, list[dict]],
    env: str,
    settings_env_names: dict[str, str],
    settings_from_env: Callable[[dict[str, str]], object],
) -> None:
    manifests = rendered[env]
    (config_map,) = [m for m in manifests if m["metadata"]["name"] == SETTINGS_CONFIGMAP]
    pods = tunelake_pods(manifests)
    assert pods
    workloads = set()
    for name, pod in pods:
        refs = [e["configMapRef"]["name"] for e in pod.get("envFrom", []) if "configMapRef" in e]
        assert refs == [SETTINGS_CONFIGMAP], name
        env_items = {item["name"]: item for item in pod.get("env", [])}
        assert {n for n in env_items if n.startswith("TUNELAKE_")} <= set(settings_env_names), name
        workload = env_items["TUNELAKE_WORKLOAD"]["value"]
        workloads.add(workload)
        from_secrets = {
            n for n, item in env_items.items() if "secretKeyRef" in item.get("valueFrom", {})
        }
        expected = secret_vars(workload) - {"TUNELAKE_KAFKA_SASL_USERNAME"}
        assert from_secrets - {"JUPYTER_TOKEN"} == expected, f"{name} ({workload})"
        # What the pod's process sees parses as valid settings (stand-ins for the secrets).
        pod_env = {
            **config_map["data"],
            **{
                n: item.get("value", f"{n.lower()}-from-secret")
                for n, item in env_items.items()
                if n.startswith("TUNELAKE_")
            },
        }
        settings = settings_from_env(pod_env)
        for field in {"s3_secret_key", "postgres_password", "api_keys", "kafka_sasl_password"}:
            has = f"TUNELAKE_{field.upper()}" in from_secrets
            assert bool(getattr(settings, field).get_secret_value()) == has, (name, field)
    assert workloads >= {"service", "spark"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_service_probes_and_port(rendered: dict[str, list[dict]], env: str) -> None:
    (deployment,) = [
        m
        for m in rendered[env]
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "tunelake-service"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/tunelake/tunelake-service:0123abc"
    assert container["command"] == ["tunelake", "serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    # `tunelake serve` listens where the settings say.
    (config_map,) = [m for m in rendered[env] if m["metadata"]["name"] == SETTINGS_CONFIGMAP]
    assert config_map["data"]["TUNELAKE_SERVICE_HOST"] == "0.0.0.0"
    assert config_map["data"]["TUNELAKE_SERVICE_PORT"] == "8000"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    (service,) = [
        m
        for m in rendered[env]
        if m["kind"] == "Service" and m["metadata"]["name"] == "tunelake-service"
    ]
    assert service["spec"]["ports"][0]["port"] == 8000


def test_production_autoscales_and_staging_does_not(rendered: dict[str, list[dict]]) -> None:
    kinds = {env: {m["kind"] for m in manifests} for env, manifests in rendered.items()}
    assert "HorizontalPodAutoscaler" in kinds["production"]
    assert "HorizontalPodAutoscaler" not in kinds["staging"]
    (hpa,) = [m for m in rendered["production"] if m["kind"] == "HorizontalPodAutoscaler"]
    (deployment,) = [
        m
        for m in rendered["production"]
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "tunelake-service"
    ]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_registry_uses_postgres_storage_from_secrets(
    rendered: dict[str, list[dict]], env: str
) -> None:
    (deployment,) = [
        m
        for m in rendered[env]
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "tunelake-registry"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env_items = {item["name"]: item for item in container["env"]}
    assert env_items["APICURIO_STORAGE_KIND"]["value"] == "sql"
    assert env_items["APICURIO_STORAGE_SQL_KIND"]["value"] == "postgresql"
    assert env_items["APICURIO_DATASOURCE_URL"]["value"] == (
        "jdbc:postgresql://tunelake-postgres.tunelake.svc:5432/registry"
    )
    for name in ("APICURIO_DATASOURCE_USERNAME", "APICURIO_DATASOURCE_PASSWORD"):
        assert env_items[name]["valueFrom"]["secretKeyRef"]["name"] == "tunelake-postgres"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_spark_applications_run_tunelake_modules_on_the_spark_image(
    rendered: dict[str, list[dict]], env: str
) -> None:
    apps = {m["metadata"]["name"]: m for m in rendered[env] if spark_app_specs(m)}
    assert set(apps) == {"tunelake-bronze-streaming", "tunelake-silver-daily"}
    assert apps["tunelake-bronze-streaming"]["kind"] == "SparkApplication"
    silver = apps["tunelake-silver-daily"]
    assert silver["kind"] == "ScheduledSparkApplication"
    assert silver["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(silver["spec"]["schedule"].split()) == 5
    service_accounts = {
        m["metadata"]["name"] for m in rendered[env] if m["kind"] == "ServiceAccount"
    }
    for name, app in apps.items():
        assert DNS_1123_LABEL.match(name) and len(name) <= 63, name
        (spec,) = spark_app_specs(app)
        assert spec["type"] == "Python" and spec["mode"] == "cluster"
        assert spec["image"] == "ghcr.io/tunelake/tunelake-spark:0123abc"
        assert spec["mainApplicationFile"] == "local:///opt/tunelake/submit.py"
        assert spec["arguments"][0] in JOBS, spec["arguments"]
        assert spec["sparkVersion"] == _pyspark_version()
        assert spec["restartPolicy"]["type"] in {"Always", "OnFailure", "Never"}
        assert spec["driver"]["serviceAccount"] in service_accounts
        for role in ("driver", "executor"):
            pod = spec[role]
            assert isinstance(pod["cores"], int) and re.fullmatch(r"\d+[kmgt]", pod["memory"])
            assert pod["podSecurityContext"]["runAsNonRoot"]
    assert apps["tunelake-bronze-streaming"]["spec"]["restartPolicy"]["type"] == "Always"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_scheduled_silver_covers_the_finished_day(
    rendered: dict[str, list[dict]], env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    import tunelake_ops.jobs as jobs

    (silver,) = [m for m in rendered[env] if m["metadata"]["name"] == "tunelake-silver-daily"]
    arguments = silver["spec"]["template"]["arguments"]
    assert arguments[:2] == ["silver", "all"]
    # The job as it parses those options: yesterday (UTC), one day.
    seen = {}

    def fake_run_for_dates(first, last, run_id=None):
        seen["range"] = (first, last)
        raise SystemExit(0)

    from spark_jobs.silver.build import SilverRun

    monkeypatch.setattr(SilverRun, "for_dates", staticmethod(fake_run_for_dates))
    with pytest.raises(SystemExit):
        jobs.jobs(arguments, standalone_mode=False)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert seen["range"] == (yesterday, yesterday)


def _pyspark_version() -> str:
    from importlib.metadata import version

    return version("pyspark")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_spark_driver_rbac_is_namespaced(rendered: dict[str, list[dict]], env: str) -> None:
    manifests = rendered[env]
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    (binding,) = [
        m
        for m in manifests
        if m["kind"] == "RoleBinding" and m["metadata"]["name"] == "tunelake-spark"
    ]
    (role,) = [
        m for m in manifests if m["kind"] == "Role" and m["metadata"]["name"] == "tunelake-spark"
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tunelake-spark", "namespace": "tunelake"}
    ]
    (rule,) = role["rules"]
    assert "pods" in rule["resources"] and "create" in rule["verbs"]


def test_jupyter_renders_when_enabled_with_its_token_from_a_secret(
    tool: Callable[[str], Path],
) -> None:
    manifests = helm_template(
        tool("helm"), ENVIRONMENTS["production"], "--set", "jupyter.enabled=true"
    )
    (deployment,) = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "tunelake-jupyter"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/tunelake/tunelake-jupyter:0123abc"
    env_items = {item["name"]: item for item in container["env"]}
    assert env_items["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "tunelake-jupyter"
    assert env_items["TUNELAKE_SPARK_MASTER"]["value"] == "local[2]"
    for manifest in manifests:
        if manifest["kind"] in {"PersistentVolumeClaim", "Deployment", "Service"}:
            kubernetes_validate.validate(manifest, KUBE_VERSIONS[-1], strict=True)


def test_environment_values_files_only_override_known_keys() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def unknown_keys(override: dict, base: dict, path: str = "") -> list[str]:
        found = []
        for key, value in override.items():
            where = f"{path}.{key}" if path else key
            if key not in base:
                # Maps the chart iterates over (or passes through) may gain keys.
                if path.split(".")[0] not in {"settings", "service"}:
                    found.append(where)
            elif isinstance(value, dict) and isinstance(base[key], dict) and base[key]:
                found += unknown_keys(value, base[key], where)
        return found

    for env, values in ENVIRONMENTS.items():
        override = yaml.safe_load(values.read_text())
        assert override["environment"] == env
        assert not unknown_keys(override, defaults), (
            f"{values.name}: {unknown_keys(override, defaults)}"
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_policies_admit_only_what_must_talk(
    rendered: dict[str, list[dict]], env: str
) -> None:
    manifests = rendered[env]
    policies = {m["metadata"]["name"]: m["spec"] for m in manifests if m["kind"] == "NetworkPolicy"}
    # Every pod the chart runs is selected by an ingress policy.
    workloads = [
        m["spec"]["template"]["metadata"]["labels"] for m in manifests if m["kind"] == "Deployment"
    ] + [
        spec[role]["labels"]
        for m in manifests
        for spec in spark_app_specs(m)
        for role in ("driver", "executor")
    ]
    for labels in workloads:
        selecting = [
            name
            for name, spec in policies.items()
            if spec["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert selecting, f"no NetworkPolicy selects {labels}"
        for name in selecting:
            assert policies[name]["policyTypes"] == ["Ingress"]

    def sources(policy: str) -> list[dict]:
        return [peer for rule in policies[policy]["ingress"] for peer in rule.get("from", [])]

    components = {
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for peer in sources("tunelake-registry")
    }
    assert components == {"service", "spark", "jupyter", None}  # None: Kafka Connect's
    (spark_peer, *_) = sources("tunelake-spark")
    assert spark_peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "spark"
    # The service takes traffic on its HTTP port only.
    assert [r["ports"] for r in policies["tunelake-service"]["ingress"]] == [
        [{"port": "http", "protocol": "TCP"}]
    ]
    store = policies["tunelake-object-store"]
    assert store["podSelector"]["matchLabels"] == {"v1.min.io/tenant": "lakehouse"}
    assert [p["port"] for r in store["ingress"] for p in r["ports"]] == [9000]


def test_a_workload_without_a_secret_gets_it_empty_and_a_local_default_is_still_refused(
    settings_from_env: Callable[[dict[str, str]], object],
) -> None:
    from pydantic import ValidationError

    from tunelake.settings import LOCAL_SECRET_DEFAULTS

    base = {"TUNELAKE_ENVIRONMENT": "production", "TUNELAKE_WORKLOAD": "jupyter"}
    settings = settings_from_env({**base, "TUNELAKE_S3_SECRET_KEY": "real"})
    assert settings.api_keys.get_secret_value() == ""
    assert settings.postgres_password.get_secret_value() == ""
    # Its own secret missing: the local default, which production refuses.
    with pytest.raises(ValidationError, match="TUNELAKE_S3_SECRET_KEY"):
        settings_from_env(base)
    # A secret it does not use but was given the local default of: refused too.
    with pytest.raises(ValidationError, match="TUNELAKE_API_KEYS"):
        settings_from_env(
            {
                **base,
                "TUNELAKE_S3_SECRET_KEY": "real",
                "TUNELAKE_API_KEYS": LOCAL_SECRET_DEFAULTS["api_keys"],
            }
        )


def test_the_grafana_dashboards_configmap_holds_the_dashboards_as_code(
    rendered: dict[str, list[dict]], repo_root: Path
) -> None:
    # The Grafana values mount it by this name (test_deploy_platform checks that side).
    grafana = yaml.safe_load((repo_root / "deploy" / "values" / "grafana.yaml").read_text())
    (name,) = grafana["dashboardsConfigMaps"].values()
    dashboards = repo_root / "deploy" / "grafana" / "dashboards"
    files = {p.name: p.read_text() for p in dashboards.glob("*.json")}
    assert files
    for env, docs in rendered.items():
        (configmap,) = [
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
        ]
        assert configmap["data"] == files, env


def _cdc(manifests: list[dict]) -> tuple[dict, dict, dict]:
    """The KafkaConnect, the KafkaConnector and the migration Job."""
    (connect,) = [m for m in manifests if m["kind"] == "KafkaConnect"]
    (connector,) = [m for m in manifests if m["kind"] == "KafkaConnector"]
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    return connect, connector, job


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdc_connector_is_connector_config_for_the_chart_settings(
    rendered: dict[str, list[dict]],
    env: str,
    settings_from_env: Callable[[dict[str, str]], object],
) -> None:
    from ingestion.cdc import connector_config

    manifests = rendered[env]
    connect, connector, _ = _cdc(manifests)
    (config_map,) = [m for m in manifests if m["metadata"]["name"] == SETTINGS_CONFIGMAP]
    kafka_login = {"kafka_sasl_username", "kafka_sasl_password"}
    stand_ins = {f"TUNELAKE_{f.upper()}": f"{f}-from-secret" for f in SECRET_FIELDS | kafka_login}
    settings = settings_from_env({**config_map["data"], **stand_ins})
    spec = connector["spec"]
    # Strimzi takes the class and the task count as fields, and refuses them in config.
    assert not {"connector.class", "tasks.max", "name"} & set(spec["config"])
    as_rest = {
        **spec["config"],
        "connector.class": spec["class"],
        "tasks.max": str(spec["tasksMax"]),
    }
    assert as_rest == connector_config(settings, user_from_env=True)
    assert connector["metadata"]["name"] == settings.cdc_connector_name
    assert connector["metadata"]["labels"]["strimzi.io/cluster"] == connect["metadata"]["name"]
    # What the settings point at is what the chart runs: Strimzi's REST Service of this
    # KafkaConnect, and this release's registry Service.
    connect_url = urlparse(settings.kafka_connect_url)
    assert connect_url.hostname == f"{connect['metadata']['name']}-connect-api"
    assert connect_url.port == 8083
    registry = urlparse(settings.connect_registry_url)
    services = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Service"}
    assert registry.port in {p["port"] for p in services[registry.hostname]["spec"]["ports"]}
    assert registry.path == "/apis/registry/v2"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdc_workers_get_the_credentials_the_connector_names_from_secrets(
    rendered: dict[str, list[dict]], env: str
) -> None:
    connect, connector, _ = _cdc(rendered[env])
    spec = connect["spec"]
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    assert spec["config"]["config.providers"] == "env"
    assert spec["config"]["config.providers.env.class"] == (
        "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
    )
    env_items = {e["name"]: e for e in spec["template"]["connectContainer"]["env"]}
    referenced = {
        name
        for value in connector["spec"]["config"].values()
        for name in re.findall(r"\$\{env:([A-Z_]+)\}", str(value))
    }
    assert referenced == {"TUNELAKE_POSTGRES_USER", "TUNELAKE_POSTGRES_PASSWORD"}
    for name in referenced:
        ref = env_items[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "tunelake-postgres", name
    credentials = {k: v for k, v in connector["spec"]["config"].items() if "password" in k}
    assert credentials and all(v.startswith("${env:") for v in credentials.values())
    # Kafka: SCRAM as its own KafkaUser (deploy/operators/strimzi-kafka.yaml), whose ACLs
    # cover these internal topics and group.
    auth = spec["authentication"]
    assert auth["type"] == "scram-sha-512"
    assert auth["passwordSecret"] == {"secretName": auth["username"], "password": "password"}
    name = connect["metadata"]["name"]
    assert spec["groupId"] == name
    for kind in ("config", "offset", "status"):
        assert spec[f"{kind}StorageTopic"].startswith(f"{name}-")
    operators = Path(__file__).resolve().parents[2] / "deploy" / "operators"
    users = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((operators / "strimzi-kafka.yaml").read_text())
        if d and d["kind"] == "KafkaUser"
    }
    acls = {
        (a["resource"]["type"], a["resource"].get("name"), a["resource"].get("patternType"))
        for a in users[auth["username"]]["spec"]["authorization"]["acls"]
    }
    assert ("topic", f"{name}-", "prefix") in acls and ("group", name, "literal") in acls
    assert spec["bootstrapServers"].startswith("tunelake-kafka-bootstrap.")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdc_image_is_built_from_the_local_stacks_plugins(
    rendered: dict[str, list[dict]], env: str
) -> None:
    from deploy_support import pom_dependency_version

    connect, _, _ = _cdc(rendered[env])
    spec = connect["spec"]
    assert spec["version"] == pom_dependency_version("connect", "connect-runtime")
    artifacts = {
        plugin["name"]: artifact
        for plugin in spec["build"]["plugins"]
        for artifact in plugin["artifacts"]
    }
    debezium = pom_dependency_version("debezium", "debezium-connector-postgres")
    tgz = artifacts["debezium-connector-postgres"]
    assert tgz["type"] == "tgz" and re.fullmatch(r"[0-9a-f]{128}", tgz["sha512sum"])
    assert tgz["url"] == (
        "https://repo1.maven.org/maven2/io/debezium/debezium-connector-postgres/"
        f"{debezium}/debezium-connector-postgres-{debezium}-plugin.tar.gz"
    )
    converter = artifacts["apicurio-avro-converter"]
    assert converter == {
        "type": "maven",
        "group": "io.apicurio",
        "artifact": "apicurio-registry-utils-converter",
        "version": pom_dependency_version("connect-avro", "apicurio-registry-utils-converter"),
    }
    output = spec["build"]["output"]
    assert output["type"] == "docker" and not output["image"].endswith(":latest")
    assert output["pushSecret"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdc_workers_may_reach_kafka_and_the_registry(
    rendered: dict[str, list[dict]], env: str
) -> None:
    manifests = rendered[env]
    connect, _, _ = _cdc(manifests)
    asked = connect["spec"]["template"]["pod"]["metadata"]["labels"]
    # The worker pods' labels: Strimzi's own, plus those of the template it keeps (no
    # strimzi.io ones, and of app.kubernetes.io only part-of).
    labels = {
        "strimzi.io/cluster": connect["metadata"]["name"],
        "strimzi.io/kind": "KafkaConnect",
        "strimzi.io/name": f"{connect['metadata']['name']}-connect",
        **{
            k: v
            for k, v in asked.items()
            if not k.startswith("app.kubernetes.io/") or k == "app.kubernetes.io/part-of"
        },
    }
    # Kafka's listener admits pods labelled part-of tunelake (networkPolicyPeers).
    assert labels["app.kubernetes.io/part-of"] == "tunelake"
    (registry_policy,) = [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and m["metadata"]["name"] == "tunelake-registry"
    ]
    peers = [p for r in registry_policy["spec"]["ingress"] for p in r.get("from", [])]
    assert any(p["podSelector"]["matchLabels"].items() <= labels.items() for p in peers)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdc_migrations_run_after_every_install_and_upgrade(
    rendered: dict[str, list[dict]], env: str
) -> None:
    _, _, job = _cdc(rendered[env])
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = pod_specs(job)[0]["containers"]
    assert container["command"] == ["tunelake", "cdc", "migrate"]
    # The Spark image: the one with the PostgreSQL driver (psycopg is in the spark group).
    assert container["image"] == "ghcr.io/tunelake/tunelake-spark:0123abc"
    assert pod_specs(job)[0]["restartPolicy"] == "Never"


def test_cdc_can_be_left_out(tool: Callable[[str], Path]) -> None:
    manifests = helm_template(tool("helm"), ENVIRONMENTS["staging"], "--set", "cdc.enabled=false")
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {"KafkaConnect", "KafkaConnector", "Job"}
    (config_map,) = [m for m in manifests if m["metadata"]["name"] == SETTINGS_CONFIGMAP]
    assert "TUNELAKE_KAFKA_CONNECT_URL" not in config_map["data"]
