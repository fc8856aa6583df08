"""Helpers shared by the tests/deploy modules (kept out of conftest so tests can import them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_tools import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "tunelake"
# The chart's environments and the values file each one deploys with.
ENVIRONMENTS = {
    "staging": CHART / "values-staging.yaml",
    "production": CHART / "values-production.yaml",
}
RELEASE = "tunelake"
NAMESPACE = "tunelake"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.29.0", "1.35.0")


def secret_settings() -> set[str]:
    """Settings fields that deployments must take from Secrets: every secret that settings
    refuse to default outside the local environment, and the user names that go with them.
    (Local-stack-only secrets, such as the local Airflow's login, never reach a cluster.)"""
    from tunelake.settings import LOCAL_SECRET_DEFAULTS

    return set(LOCAL_SECRET_DEFAULTS) | {"s3_access_key", "postgres_user"}


def run_tool(
    command: list[str | Path],
    *,
    cwd: Path = REPO_ROOT,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{Path(str(command[0])).name} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


def helm_template(
    helm: Path, values: Path | None, *extra: str, kube_version: str = KUBE_VERSIONS[-1]
) -> list[dict]:
    command: list[str | Path] = [
        helm,
        "template",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        kube_version,
        "--set",
        "image.tag=0123abc",
    ]
    if values is not None:
        command += ["--values", values]
    command += list(extra)
    rendered = run_tool(command).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def walk_env(containers: list[dict]) -> list[dict]:
    """Every ``env`` item of these containers."""
    return [item for container in containers for item in container.get("env") or []]


def pod_specs(manifest: dict) -> list[dict]:
    """The pod specs inside a workload manifest (Deployment, Pod, ...), else []."""
    kind = manifest["kind"]
    if kind == "Pod":
        return [manifest["spec"]]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        return [manifest["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def spark_app_specs(manifest: dict) -> list[dict]:
    if manifest["kind"] == "SparkApplication":
        return [manifest["spec"]]
    if manifest["kind"] == "ScheduledSparkApplication":
        return [manifest["spec"]["template"]]
    return []


def parse_properties(text: str) -> dict[str, str]:
    """A Java .properties text (no continuations) as a dict; comments and blanks dropped."""
    pairs = (
        line.split("=", 1)
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith(("#", "!"))
    )
    return {key.strip(): value.strip() for key, value in pairs}


def pom_dependency_version(module: str, artifact: str) -> str:
    """The version jvm/<module>/pom.xml pins for ``artifact`` (properties resolved), the
    local stack's; deployments must run the same."""
    import xml.etree.ElementTree as ET

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(REPO_ROOT / "jvm" / module / "pom.xml").getroot()
    declared = root.find("m:properties", ns)
    properties = {} if declared is None else {c.tag.split("}")[1]: c.text for c in declared}
    for dependency in root.iterfind(".//m:dependency", ns):
        if dependency.findtext("m:artifactId", namespaces=ns) == artifact:
            version = dependency.findtext("m:version", namespaces=ns)
            if version.startswith("${"):
                version = properties[version[2:-1]]
            return version
    raise AssertionError(f"jvm/{module}/pom.xml: no dependency {artifact}")
