from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tunelake.settings import Settings
from tunelake.stack import manager
from tunelake.stack.process import wait_until
from tunelake.stack.services import SERVICE_TYPES, all_services


def test_starting_a_service_starts_its_dependencies():
    services = all_services(Settings())
    assert [s.name for s in manager._ordered(services, ["registry"])] == ["postgres", "registry"]
    assert [s.name for s in manager._ordered(services, ["s3"])] == ["s3"]


def test_unknown_service_is_named():
    with pytest.raises(manager.StackError, match="bogus"):
        manager._ordered(all_services(Settings()), ["bogus"])


def test_dependencies_start_before_their_dependents():
    names = [kind.name for kind in SERVICE_TYPES]
    for kind in SERVICE_TYPES:
        for dep in kind.depends_on:
            assert names.index(dep) < names.index(kind.name)


def test_every_service_has_its_own_port(tmp_path):
    services = all_services(Settings(state_dir=tmp_path)).values()
    ports = [svc.port for svc in services if svc.port is not None]
    assert len(set(ports)) == len(ports)
    assert {svc.name for svc in services if svc.port is None} == {
        "airflow-scheduler",
        "airflow-dag-processor",
    }


@pytest.mark.parametrize(
    ("args", "described"),
    [
        (["-m", "http.server", "--bind", "127.0.0.1", "0"], "http.server"),
        (["-c", "import time; time.sleep(30)"], None),  # plain python: the interpreter
    ],
)
def test_describe_process_names_the_real_program(args, described):
    import subprocess

    argv = [sys.executable, *args]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmdline = Path(f"/proc/{child.pid}/cmdline")
    try:
        # Until the child has exec'd, /proc shows a copy of this process (or nothing).
        assert wait_until(
            lambda: cmdline.read_bytes().decode().split("\0")[:-1] == argv, timeout_s=10
        )
        assert manager.describe_process(child.pid) == (
            described or os.path.basename(sys.executable)
        )
    finally:
        child.kill()
        child.wait()


def _throwaway_settings(tmp_path, port: int) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path, s3_endpoint_url=f"http://127.0.0.1:{port}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_port_held_by_someone_else_is_reported(tmp_path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(manager.StackError, match=rf"^s3: port {port} is taken"):
            manager.up(_throwaway_settings(tmp_path, port), ["s3"])


def test_a_service_that_dies_is_named_with_its_log_tail(tmp_path, monkeypatch):
    from tunelake.stack.services import S3Service

    crash = "import sys; print('fatal: bad identities file'); sys.exit(3)"
    monkeypatch.setattr(S3Service, "command", lambda self: [sys.executable, "-c", crash])
    with pytest.raises(manager.StackError, match=r"^s3: exited while starting") as failed:
        manager.up(_throwaway_settings(tmp_path, _free_port()), ["s3"])
    assert "fatal: bad identities file" in failed.value.log_tail
