"""The wheel, installed as each image installs it: into a fresh virtual environment away
from the checkout, with its dependency group only (uv.lock exported for that group).

Every module a group's image runs imports from that install, the image's command resolves,
and the Spark install runs a Bronze job (the CLI) and a Silver job (spark-submit of the
installed ``submit.py``, as the Spark image does) against the local stack.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingestion.producer import EventProducer
from ingestion.streams import Stream
from service.events import listen_events
from service.models import ListensIn
from tests.deploy.deploy_tools import _uv
from tests.support import make_listens, throwaway_lake
from tunelake.settings import SOURCE_ROOT, Settings

# The modules each image runs, by package prefix; every module of the wheel is claimed by
# one group or is the local stack's or the benchmark's (LOCAL_ONLY), so a new module has
# to be placed.
GROUP_MODULES = {
    "service": (
        "tunelake",
        "service",
        "ingestion",
        "ml.model",
        "ml.scoring",
        "ml.registry",
        "ml.gate",
        "tunelake_ops.cli",
        "tunelake_ops.jobs",
        "tunelake_ops.model_cli",
        # The CLI's command groups (imported with it).
        "tunelake_ops.users_cli",
        "tunelake_ops.cdc_cli",
        "tunelake_ops.import_cli",
    ),
    "spark": (
        "tunelake",
        "spark_jobs",
        "dq",
        "ingestion",
        "ml.model",
        "ml.scoring",
        "ml.registry",
        "ml.gate",
        "ml.evaluation",
        "ml.training_set",
        "ml.als",
        "ml.train",
        "tunelake_ops.jobs",
        "tunelake_ops.submit",
        "tunelake_ops.cli",
        "tunelake_ops.users_cli",
        # compose's cdc-init runs `tunelake cdc apply` on the Spark image.
        "tunelake_ops.cdc_cli",
        # `tunelake import listens` reads files with pyarrow: the Spark image has it.
        "tunelake_ops.import_cli",
        "tunelake_ops.history_import",
        "service.models",
        "service.events",
        "tunelake_ops.pipeline",
        "tunelake_ops.trino",
    ),
    "airflow": (
        "tunelake",
        "tunelake_ops.airflow_tasks",
        "tunelake_ops.airflow_env",
        "tunelake_ops.jobs",
        "tunelake_ops.pipeline",
        "tunelake_ops.trino",
    ),
}
LOCAL_ONLY = (
    "tunelake_ops.stack",
    "tunelake_ops.demo",
    "tunelake_ops.shell_env",
    "tunelake_ops.__main__",
    "ml.implicit_backend",
)
COMMANDS = {
    "service": [["tunelake", "serve", "--help"]],
    "spark": [
        ["spark-submit", "--version"],
        ["tunelake", "silver", "--help"],
        ["tunelake", "import", "listens", "--help"],
    ],
    "airflow": [["airflow", "version"]],
}


def run(argv: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=600, **kwargs
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([_uv(), "build", "--wheel", "--out-dir", out], cwd=SOURCE_ROOT)
    return next(out.glob("tunelake-*.whl"))


def wheel_modules(wheel: Path) -> list[str]:
    names = zipfile.ZipFile(wheel).namelist()
    return sorted(
        n[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for n in names
        if n.endswith(".py") and ".dist-info" not in n
    )


def inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def claimed(module: str, prefixes: tuple[str, ...]) -> bool:
    """``module`` is, is inside, or is a package holding one of ``prefixes``."""
    return any(inside(module, p) or inside(p, module) for p in prefixes)


def test_every_module_of_the_wheel_belongs_to_an_image_or_the_local_stack(wheel):
    modules = wheel_modules(wheel)
    every_group = tuple(p for prefixes in GROUP_MODULES.values() for p in prefixes)
    assert [m for m in modules if not claimed(m, every_group + LOCAL_ONLY)] == []
    for group, prefixes in GROUP_MODULES.items():
        missing = [p for p in prefixes if not any(inside(m, p) for m in modules)]
        assert missing == [], f"the {group} image runs {missing}, which the wheel lacks"


@pytest.fixture(scope="module")
def installs(wheel, tmp_path_factory) -> dict[str, Path]:
    """One virtual environment per group, as the images build them: the group's locked
    requirements, then the wheel without dependencies."""
    root = tmp_path_factory.mktemp("installs")
    uv, envs = _uv(), {}
    for group in GROUP_MODULES:
        requirements = root / f"{group}.txt"
        run(
            [
                uv,
                "export",
                "--frozen",
                "--no-dev",
                "--extra",
                group,
                "--no-emit-project",
                "--quiet",
                "-o",
                requirements,
            ],
            cwd=SOURCE_ROOT,
        )
        venv = root / group
        run([uv, "venv", "--quiet", "--python", "3.11", venv], env=_uv_env())
        python = venv / "bin" / "python"
        run(
            [uv, "pip", "install", "--quiet", "--python", python, "-r", requirements], env=_uv_env()
        )
        run(
            [uv, "pip", "install", "--quiet", "--python", python, "--no-deps", wheel], env=_uv_env()
        )
        envs[group] = venv
    return envs


def _uv_env() -> dict[str, str]:
    return {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}


def _clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment an image gives its process: its venv first on PATH, nothing of the
    checkout's (no PYTHONPATH, not the dev venv)."""
    path = [str(venv / "bin"), *(p for p in os.environ["PATH"].split(":") if ".venv" not in p)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": ":".join(path), "VIRTUAL_ENV": str(venv), **extra}


@pytest.mark.parametrize("group", sorted(GROUP_MODULES))
def test_each_group_install_imports_its_modules_and_runs_its_commands(
    wheel, installs, group, tmp_path
):
    venv = installs[group]
    modules = [m for m in wheel_modules(wheel) if claimed(m, GROUP_MODULES[group])]
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    module = importlib.import_module(name)\n"
        "    assert 'site-packages' in module.__file__, (name, module.__file__)\n"
        "print(len(sys.argv) - 1)\n"
    )
    env = _clean_env(venv, AIRFLOW_HOME=str(tmp_path / "airflow"))
    imported = run([venv / "bin" / "python", "-c", script, *modules], cwd=tmp_path, env=env)
    assert int(imported.stdout) == len(modules) > 0
    for command in COMMANDS[group]:
        run([venv / "bin" / command[0], *command[1:]], cwd=tmp_path, env=env)


def test_the_spark_install_runs_a_bronze_and_a_silver_job(
    installs, spark, trino, monkeypatch, tmp_path
):
    venv = installs["spark"]
    jars = ",".join(Settings().spark_jar_list())  # what the Spark image bakes into Spark
    with throwaway_lake(monkeypatch, "wheel") as lake:
        producer = EventProducer(lake)
        body = ListensIn(**make_listens(25))
        producer.publish(
            Stream.LISTENS, listen_events("u-wheel", body.listens, datetime.now(UTC), None)
        )
        producer.close()
        env = _clean_env(venv, TUNELAKE_SPARK_JARS=jars)
        python = venv / "bin" / "python"

        bronze = run(
            [venv / "bin" / "tunelake", "bronze", "--once"],
            cwd=tmp_path,
            env=env,
        )
        assert "INFO spark_jobs.bronze.ingest: bronze" in bronze.stderr + bronze.stdout
        topic = lake.topic_listening_history
        assert spark.read.format("delta").load(lake.bronze_path(topic)).count() == 25

        submit_app = run(
            [python, "-c", "from tunelake_ops.jobs import SUBMIT_APP; print(SUBMIT_APP)"],
            cwd=tmp_path,
            env=env,
        ).stdout.strip()
        assert submit_app.startswith(str(venv)), submit_app
        silver = run(
            [
                venv / "bin" / "spark-submit",
                "--master",
                "local[2]",
                "--jars",
                jars,
                "--conf",
                f"spark.pyspark.python={python}",
                submit_app,
                "silver",
                "validate-bronze",
            ],
            cwd=tmp_path,
            env=env,
        )
        assert "INFO dq.gate:" in silver.stdout + silver.stderr
