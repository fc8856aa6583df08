"""The environment of the local stack's Airflow: its processes, `dag.test()` and the CLI.

Airflow reads its configuration from ``AIRFLOW__*`` variables once, at import: set these
before importing ``airflow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from tunelake.settings import SOURCE_ROOT, Settings
from tunelake_ops.stack.files import write_private

DAGS_FOLDER = SOURCE_ROOT / "dags"
SPARK_CONNECTION = "tunelake_spark"


def airflow_home(settings: Settings) -> Path:
    return settings.state_dir / "airflow"


def passwords_file(settings: Settings) -> Path:
    return airflow_home(settings) / "passwords.json"


def _derived_secret(settings: Settings, purpose: str) -> str:
    # Stable per checkout and password, never stored in the repo.
    seed = f"{purpose}:{settings.state_dir}:{settings.airflow_admin_password.get_secret_value()}"
    return hashlib.sha256(seed.encode()).hexdigest()


def airflow_env(settings: Settings) -> dict[str, str]:
    pg = settings.postgres_password.get_secret_value()
    bin_dir = str(Path(sys.executable).parent)
    api = f"http://127.0.0.1:{settings.airflow_port}"
    return {
        "AIRFLOW_HOME": str(airflow_home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://{settings.postgres_user}:{pg}@{settings.postgres_host}:"
            f"{settings.postgres_port}/{settings.airflow_db}"
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": _derived_secret(settings, "api"),
        "AIRFLOW__API_AUTH__JWT_SECRET": _derived_secret(settings, "jwt"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home(settings) / "logs"),
        f"AIRFLOW_CONN_{SPARK_CONNECTION.upper()}": json.dumps(
            {"conn_type": "spark", "host": settings.spark_master}
        ),
        # Tasks run spark-submit and tunelake from this environment.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def write_passwords_file(settings: Settings) -> None:
    password = settings.airflow_admin_password.get_secret_value()
    if not password:  # outside `local` there is no default login (see settings)
        raise ValueError(
            "TUNELAKE_AIRFLOW_ADMIN_PASSWORD is empty: set the local Airflow's login password"
        )
    write_private(passwords_file(settings), json.dumps({settings.airflow_admin_user: password}))
