"""Every command and entrypoint that compose, the chart and the Airflow values run resolves
to something its image has.

No image is built here, so what an image has is derived from what builds it: its base
image's tools, the console scripts of the distributions its dependency group installs into
the PATH the Dockerfile sets, the files it copies, and the packages it installs.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest
import yaml
from deploy_support import ENVIRONMENTS, pod_specs, spark_app_specs
from test_deploy_compose import load_compose

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# What the pinned base images ship and tunelake relies on.
BASE_TOOLS = {
    "python": {"python", "python3", "bash", "sh"},
    "apache/airflow": {"airflow", "python", "python3", "bash", "sh", "curl"},
}


def stage_text(dockerfile: str, target: str) -> str:
    """The instructions of ``target`` and of the stages it is built on."""
    text = (DOCKER / dockerfile).read_text()
    stages = re.split(r"^FROM\s+", text, flags=re.MULTILINE)[1:]
    by_name = {}
    for stage in stages:
        header = stage.splitlines()[0].split()
        by_name[header[-1] if len(header) >= 3 else header[0]] = (header[0], stage)
    parent, body = by_name[target]
    return (stage_text(dockerfile, parent) if parent in by_name else "") + body


def pyspark_bin() -> set[str]:
    """The scripts pyspark installs into the environment's bin (spark-submit, ...)."""
    return {
        Path(f.name).name
        for f in distribution("pyspark").files
        if f.parts[0] == ".." and f.parent.name == "bin"
    }


def project_scripts() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"])


def image_has(image: str) -> set[str]:
    """Commands (on PATH) and absolute paths that image has."""
    dockerfile, target = {
        "service": ("service.Dockerfile", "runtime"),
        "spark": ("spark.Dockerfile", "spark"),
        "jupyter": ("spark.Dockerfile", "jupyter"),
        "airflow": ("airflow.Dockerfile", "runtime"),
    }[image]
    text = stage_text(dockerfile, target)
    base = re.match(r"(\S+?):", text).group(1)
    has = set(BASE_TOOLS[base])
    copied = re.findall(r"^COPY\s+(?:--\S+\s+)*\S+\s+(/\S+)$", text, re.MULTILINE)
    has |= {path for path in copied if Path(path).suffix}
    if image == "airflow":
        # pip installs the airflow group into the image's own environment.
        has |= pyspark_bin() | project_scripts()
    else:
        venv_bin = "/opt/tunelake/.venv/bin"
        assert re.search(rf"^ENV PATH={venv_bin}:", text, re.MULTILINE), image
        has |= project_scripts()
        # The venv is built in another stage of the same file, with the image's group.
        built = (DOCKER / dockerfile).read_text()
        assert "COPY --from=build /opt/tunelake/.venv /opt/tunelake/.venv" in text, image
        if "--extra spark" in built:
            assert "$SPARK_HOME/bin" in text
            has |= pyspark_bin()
    if "openjdk-17-jre-headless" in text:
        has.add("java")
    # A venv copied in from a stage that synced the notebook group: jupyter_core's command.
    for source in re.findall(r"^COPY --from=(\S+) /opt/tunelake/.venv ", text, re.MULTILINE):
        if "--extra notebook" in stage_text(dockerfile, source):
            has.add("jupyter")
    return has


def test_what_images_have_is_derived_from_real_distributions() -> None:
    assert {"spark-submit", "spark-class"} <= pyspark_bin()
    assert "tunelake" in image_has("service")
    assert {"spark-submit", "spark-class", "/opt/tunelake/submit.py"} <= image_has("spark")
    assert "/opt/tunelake/entrypoint.sh" in image_has("spark")
    assert {"spark-submit", "java", "airflow"} <= image_has("airflow")
    assert "java" not in image_has("service") and "spark-submit" not in image_has("service")
    assert "jupyter" in image_has("jupyter") and "jupyter" not in image_has("spark")


def entrypoint_and_cmd(dockerfile: str, target: str) -> list[list[str]]:
    text = stage_text(dockerfile, target)
    found = re.findall(r"^(?:ENTRYPOINT|CMD)\s+(\[.*\])$", text, re.MULTILINE)
    return [yaml.safe_load(item) for item in found]


@pytest.mark.parametrize(
    ("image", "dockerfile", "target"),
    [
        ("service", "service.Dockerfile", "runtime"),
        ("spark", "spark.Dockerfile", "spark"),
        ("jupyter", "spark.Dockerfile", "jupyter"),
    ],
)
def test_images_default_commands_resolve(image: str, dockerfile: str, target: str) -> None:
    for command in entrypoint_and_cmd(dockerfile, target):
        assert command[0] in image_has(image), (image, command)


def test_compose_commands_resolve(tool, repo_root: Path) -> None:
    project = load_compose(tool("composecheck"), repo_root)
    checked = 0
    for name, service in project["services"].items():
        build = service.get("build")
        if not build:
            continue  # third-party images: their own commands
        image = Path(build["dockerfile"]).name.removesuffix(".Dockerfile")
        image = build.get("target", image) if image == "spark" else image
        has = image_has(image)
        for command in (service.get("entrypoint"), service.get("command")):
            if command:
                assert command[0] in has, (name, command)
                checked += 1
        test = (service.get("healthcheck") or {}).get("test") or []
        if test and test[0] == "CMD":
            assert test[1] in has, (name, test)
        elif test and test[0] == "CMD-SHELL":
            assert test[1].split()[0] in has, (name, test)
    assert checked >= 6
    # The Airflow tasks there spark-submit, with a JVM (client mode: the driver runs there).
    assert {"spark-submit", "java"} <= image_has("airflow")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_chart_commands_resolve(rendered: dict[str, list[dict]], env: str) -> None:
    checked = 0
    for manifest in rendered[env]:
        for spec in pod_specs(manifest):
            for container in spec["containers"]:
                match = re.search(r"/tunelake-(\w+):", container["image"])
                if not match:
                    continue  # the registry: Apicurio's own image and command
                has = image_has(match.group(1))
                command = (
                    container.get("command")
                    or entrypoint_and_cmd(
                        f"{'spark' if match.group(1) == 'jupyter' else match.group(1)}.Dockerfile",
                        "jupyter" if match.group(1) == "jupyter" else "runtime",
                    )[-1]
                )
                assert command[0] in has, (manifest["metadata"]["name"], command)
                checked += 1
        for spec in spark_app_specs(manifest):
            path = spec["mainApplicationFile"].removeprefix("local://")
            assert path in image_has(spec["image"].split("/tunelake-")[1].split(":")[0]), path
            checked += 1
    assert checked >= 4


def test_airflow_values_commands_resolve() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "values" / "airflow.yaml").read_text())
    job = values["createUserJob"]
    has = image_has("airflow")
    assert job["command"][0] in has
    assert all(re.match(r"\s*airflow ", part) for part in " ".join(job["args"]).split("||"))


def test_airflow_image_puts_only_missing_jars_beside_pyspark(tmp_path: Path) -> None:
    """The Airflow image's jar step, run for real against a stand-in pyspark."""
    code = re.search(
        r'RUN python -c "(.*?)" \\\n\s+(\S+)', (DOCKER / "airflow.Dockerfile").read_text(), re.S
    )
    source, argument = code.group(1).replace("\\\n", ""), code.group(2)
    assert argument == "/tmp/extra-jars"
    fake = tmp_path / "site" / "pyspark"
    (fake / "jars").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    for jar in ("hadoop-client-api-3.4.1.jar", "jackson-core-2.18.2.jar"):
        (fake / "jars" / jar).write_text("spark's")
    extra = tmp_path / "extra"
    extra.mkdir()
    for jar in (
        "delta-spark_2.13-4.0.0.jar",
        "hadoop-client-api-3.4.2.jar",
        "hadoop-aws-3.4.1.jar",
    ):
        (extra / jar).write_text("extra")
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", source, str(extra)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (fake / "jars").iterdir()) == [
        "delta-spark_2.13-4.0.0.jar",
        "hadoop-aws-3.4.1.jar",
        "hadoop-client-api-3.4.1.jar",
        "jackson-core-2.18.2.jar",
    ]
    assert (fake / "jars" / "hadoop-client-api-3.4.1.jar").read_text() == "spark's"
