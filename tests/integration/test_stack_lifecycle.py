"""`up` from scratch, a second `up`, `status` and `down` on a throwaway stack.

The throwaway stack has its own state folder and ports, so it runs beside the session's
stack; the last test checks that its `down` left the session's stack alone. It starts the
servers whose start and stop differ in kind (a Go binary, PostgreSQL's own launcher and
its backends, a JVM that formats its storage first). Every server cold from scratch is
what the session's own `make up` does on a fresh checkout, and the session's stack shows
each is the real server: two full stacks at once cost the suite a minute and a half of
its two cores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TEST_STACK_PORTS
from tunelake.settings import Settings
from tunelake_ops.stack import manager, ports, process
from tunelake_ops.stack.services import all_services

REAL_SERVERS = {
    "kafka": "java kafka.Kafka",
    "s3": "weed mini",
    "postgres": "postgres",
    "registry": "java quarkus-run.jar",
    "connect": "java org.apache.kafka.connect.cli.ConnectDistributed",
    "trino": "java io.trino.server.TrinoServer",
    "airflow-api-server": "airflow api_server",
    "airflow-scheduler": "airflow scheduler",
    "airflow-dag-processor": "airflow dag-processor",
}


THROWAWAY_SERVICES = ("s3", "postgres", "kafka")


def test_every_service_of_the_stack_runs_its_real_server(settings):
    rows = {row.service: row for row in manager.status(settings)}
    assert {name: row.health for name, row in rows.items()} == dict.fromkeys(
        REAL_SERVERS, "healthy"
    )
    assert {name: row.process[: len(REAL_SERVERS[name])] for name, row in rows.items()} == (
        REAL_SERVERS
    )


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory):
    # pytest's temp root is private to its user: PostgreSQL, run as the postgres user when
    # we are root, keeps its cluster where that user can reach it.
    state = tmp_path_factory.mktemp("stack")
    settings = Settings(_env_file=None, state_dir=state, **TEST_STACK_PORTS["test_stack_lifecycle"])
    record: dict = {"settings": settings}
    yield record
    manager.down(settings)
    shutil.rmtree(all_services(settings)["postgres"].data_dir, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


def test_cold_up_starts_the_named_real_servers_and_only_them(throwaway):
    settings = throwaway["settings"]
    outcomes = manager.up(settings, THROWAWAY_SERVICES)
    assert {o.service: o.action for o in outcomes} == dict.fromkeys(THROWAWAY_SERVICES, "started")

    rows = {row.service: row for row in manager.status(settings)}
    assert {name: row.health for name, row in rows.items()} == {
        name: "healthy" if name in THROWAWAY_SERVICES else "stopped" for name in REAL_SERVERS
    }
    assert {name: rows[name].process[: len(REAL_SERVERS[name])] for name in THROWAWAY_SERVICES} == {
        name: REAL_SERVERS[name] for name in THROWAWAY_SERVICES
    }
    throwaway["pids"] = {name: rows[name].pid for name in THROWAWAY_SERVICES}


def test_second_up_starts_nothing(throwaway):
    settings = throwaway["settings"]
    outcomes = manager.up(settings, THROWAWAY_SERVICES)
    assert {o.service: o.action for o in outcomes} == dict.fromkeys(THROWAWAY_SERVICES, "running")
    rows = {row.service: row.pid for row in manager.status(settings)}
    assert {name: rows[name] for name in THROWAWAY_SERVICES} == throwaway["pids"]


def test_down_leaves_no_process_of_ours(throwaway):
    settings = throwaway["settings"]
    services = all_services(settings)
    tracked = {name: process.read_pid_file(services[name].pid_file) for name in THROWAWAY_SERVICES}

    stopped = manager.down(settings)

    assert sorted(stopped) == sorted(THROWAWAY_SERVICES)
    for name, proc in tracked.items():
        assert not process.is_alive(proc), f"{name} (pid {proc.pid}) still running"
        assert not Path(f"/proc/{proc.pid}").exists() or not process.is_alive(proc)
        port = services[name].port
        assert port is None or not ports.accepting("127.0.0.1", port), f"{name} port still open"
    # PostgreSQL's backends and weed's helpers are gone too: nothing runs from our folders.
    for folder in (settings.state_dir, services["postgres"].data_dir):
        leftovers = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True)
        assert leftovers.stdout.split() == [], f"processes still running from {folder}"
    assert {row.health for row in manager.status(settings)} == {"stopped"}


def test_down_left_the_session_stack_alone(settings):
    assert {row.service: row.health for row in manager.status(settings)} == dict.fromkeys(
        REAL_SERVERS, "healthy"
    )


def test_cli_second_up_reports_nothing_started(settings):
    result = subprocess.run(
        [sys.executable, "-m", "tunelake_ops", "up"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "started: nothing (all running)" in result.stderr
