"""Airflow reaches Spark in every environment: the DAGs load with that environment's
settings, every connection a DAG names is defined there, and on Kubernetes the
SparkApplication a task creates is the chart's own spec running that task's job.

Environments: the local stack (tunelake_ops.airflow_env), compose (docker-compose.yml), and
the Helm deployments (deploy/values/airflow.yaml with the tunelake chart rendered for
staging and production).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from deploy_support import ENVIRONMENTS, spark_app_specs
from test_deploy_compose import load_compose

from tunelake_ops.airflow_env import DAGS_FOLDER, SPARK_CONNECTION

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_VALUES = REPO / "deploy" / "values" / "airflow.yaml"
ENVS = ["local", "compose", *ENVIRONMENTS]


def airflow_values() -> dict:
    return yaml.safe_load(AIRFLOW_VALUES.read_text())


def config_map(manifests: list[dict], name: str) -> dict:
    (found,) = [m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name]
    return found


def helm_airflow_env(manifests: list[dict]) -> dict[str, str]:
    """What an Airflow pod of the official chart sees with our values: the tunelake settings
    ConfigMap (extraEnvFrom), `env`, and `extraEnv` (its configMapKeyRefs resolved against
    the rendered chart); `secret` entries are named, with stand-in values."""
    values = airflow_values()
    env: dict[str, str] = {}
    for ref in yaml.safe_load(values["extraEnvFrom"]):
        env |= config_map(manifests, ref["configMapRef"]["name"])["data"]
    env |= {item["name"]: item["value"] for item in values.get("env", [])}
    for item in yaml.safe_load(values.get("extraEnv") or "[]"):
        ref = item["valueFrom"]["configMapKeyRef"]
        env[item["name"]] = config_map(manifests, ref["name"])["data"][ref["key"]]
    env |= {item["envName"]: f"<{item['secretName']}>" for item in values.get("secret", [])}
    return env


@pytest.fixture(scope="module")
def compose_project(tool: Callable[[str], Path], repo_root: Path) -> dict:
    return load_compose(tool("composecheck"), repo_root)


@pytest.fixture
def environment_of(
    rendered: dict[str, list[dict]], compose_project: dict
) -> Callable[[str], dict[str, str]]:
    """The environment variables Airflow's processes have in one deployment environment."""

    def env(name: str) -> dict[str, str]:
        if name == "local":
            from tunelake.settings import Settings
            from tunelake_ops.airflow_env import airflow_env

            return airflow_env(Settings(_env_file=None))
        if name == "compose":
            return dict(compose_project["services"]["airflow-scheduler"]["environment"])
        return helm_airflow_env(rendered[name])

    return env


@pytest.fixture
def dagbag_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], object]]:
    """Load the DagBag as Airflow's processes there would: with exactly their TUNELAKE_*."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    from tunelake.settings import get_settings

    def load(env: dict[str, str]) -> DagBag:
        for name in list(os.environ):
            if name.startswith("TUNELAKE_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            if name.startswith("TUNELAKE_"):
                monkeypatch.setenv(name, value)
        # No .env of the checkout: only this environment's variables.
        monkeypatch.chdir(DAGS_FOLDER)
        get_settings.cache_clear()
        return DagBag(dag_folder=str(DAGS_FOLDER))

    yield load
    get_settings.cache_clear()


def named_connections(task: object) -> set[str]:
    """Every connection id an operator holds (SparkSubmit: _conn_id; SparkKubernetes:
    kubernetes_conn_id; ...)."""
    return {v for k, v in vars(task).items() if k.endswith("conn_id") and isinstance(v, str)}


def defined_connections(env: dict[str, str]) -> set[str]:
    return {
        name.removeprefix("AIRFLOW_CONN_").lower()
        for name in env
        if name.startswith("AIRFLOW_CONN_")
    }


@pytest.mark.parametrize("name", ENVS)
def test_every_connection_a_dag_names_is_defined(
    name: str,
    environment_of: Callable[[str], dict[str, str]],
    dagbag_in: Callable[[dict[str, str]], object],
) -> None:
    env = environment_of(name)
    bag = dagbag_in(env)
    assert bag.import_errors == {}, bag.import_errors
    named = {conn for dag in bag.dags.values() for t in dag.tasks for conn in named_connections(t)}
    assert named == {SPARK_CONNECTION}
    assert named <= defined_connections(env), f"{name} defines {defined_connections(env)}"


@pytest.mark.parametrize("name", ENVS)
def test_the_spark_connection_reaches_that_environments_spark(
    name: str, environment_of: Callable[[str], dict[str, str]]
) -> None:
    env = environment_of(name)
    connection = json.loads(env[f"AIRFLOW_CONN_{SPARK_CONNECTION.upper()}"])
    deploy = env.get("TUNELAKE_SPARK_DEPLOY", "submit")
    if name == "local":
        assert (connection["conn_type"], connection["host"], deploy) == (
            "spark",
            "local[2]",
            "submit",
        )
    elif name == "compose":
        assert connection["conn_type"] == "spark" and deploy == "submit"
        master = f"{connection['host']}:{connection['port']}"
        assert master == env["TUNELAKE_SPARK_MASTER"] == "spark://spark-master:7077"
    else:
        assert connection["conn_type"] == "kubernetes" and deploy == "kubernetes"
        assert connection["extra"] == {"in_cluster": True, "namespace": "tunelake"}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_kubernetes_tasks_create_the_charts_spark_application(
    env_name: str,
    rendered: dict[str, list[dict]],
    environment_of: Callable[[str], dict[str, str]],
    dagbag_in: Callable[[dict[str, str]], object],
) -> None:
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import (
        SparkKubernetesOperator,
    )

    manifests = rendered[env_name]
    bag = dagbag_in(environment_of(env_name))
    (bronze,) = [m for m in manifests if m["metadata"]["name"] == "tunelake-bronze-streaming"]
    (bronze_spec,) = spark_app_specs(bronze)
    silver = bag.get_dag("silver_daily")
    # Every task but the last, which registers the new tables in Trino (no Spark).
    for task in silver.tasks:
        if task.task_id == "register_in_trino":
            continue
        assert isinstance(task, SparkKubernetesOperator), task
        app = task.template_spec["spark"]
        assert (app["apiVersion"], app["kind"]) == (
            "sparkoperator.k8s.io/v1beta2",
            "SparkApplication",
        )
        assert app["metadata"]["namespace"] == task.namespace == "tunelake"
        spec = app["spec"]
        assert spec["mainApplicationFile"] == "local:///opt/tunelake/submit.py"
        assert spec["arguments"][:2] == ["silver", task.task_id.replace("_", "-")]
        assert spec["arguments"][2::2] == ["--from", "--to"]
        assert spec["restartPolicy"] == {"type": "Never"}, "Airflow retries, not the operator"
        # The same spec as the chart's own applications, but for the job and the sizes.
        per_job = {"arguments", "restartPolicy", "driver", "executor"}
        assert {k: v for k, v in spec.items() if k not in per_job} == {
            k: v for k, v in bronze_spec.items() if k not in per_job
        }
        for role in ("driver", "executor"):
            shared = {"env", "envFrom", "podSecurityContext", "securityContext"}
            assert {k: spec[role][k] for k in shared} == {k: bronze_spec[role][k] for k in shared}
    # The operator gets the Jinja of the run's dates, rendered at run time.
    assert "{{" in silver.get_task("stage").template_spec["spark"]["spec"]["arguments"][3]


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_airflows_worker_may_manage_spark_applications(
    env_name: str, rendered: dict[str, list[dict]]
) -> None:
    manifests = rendered[env_name]
    (binding,) = [
        m
        for m in manifests
        if m["kind"] == "RoleBinding" and m["metadata"]["name"] == "tunelake-airflow-spark"
    ]
    # The official chart's worker service account of release `airflow` (KubernetesExecutor
    # task pods run as it).
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "tunelake"}
    ]
    (role,) = [
        m
        for m in manifests
        if m["kind"] == "Role" and m["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert {"create", "get", "watch", "delete"} <= grants[
        ("sparkoperator.k8s.io", "sparkapplications")
    ]
    assert "get" in grants[("", "pods/log")]
    # Watching the driver, and labelling a finished one so that a retry does not reattach.
    assert {"get", "watch", "patch"} <= grants[("", "pods")]
    assert "create" not in grants[("", "pods")], "the Spark Operator creates the pods"
    assert not any("*" in verbs for verbs in grants.values())


def test_airflow_on_kubernetes_gets_none_of_tunelakes_secrets(
    rendered: dict[str, list[dict]], settings_from_env: Callable[[dict[str, str]], object]
) -> None:
    from tunelake.settings import LOCAL_SECRET_DEFAULTS

    env = helm_airflow_env(rendered["production"])
    assert not {f"TUNELAKE_{f.upper()}" for f in LOCAL_SECRET_DEFAULTS} & set(env)
    # ...and its settings are valid without them (empty, never the local defaults).
    settings = settings_from_env({k: v for k, v in env.items() if k.startswith("TUNELAKE_")})
    assert settings.workload.value == "airflow"
    assert settings.postgres_password.get_secret_value() == ""
