from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import pytest

from tunelake.settings import Settings
from tunelake_ops.stack import manager, process
from tunelake_ops.stack import services as stack_services
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.process import wait_until
from tunelake_ops.stack.services import SERVICE_TYPES, all_services


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
        assert process.describe_process(child.pid) == (
            described or os.path.basename(sys.executable)
        )
    finally:
        child.kill()
        child.wait()


def _throwaway_settings(tmp_path, port: int) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path, s3_endpoint_url=f"http://127.0.0.1:{port}")


@pytest.fixture
def installed(monkeypatch):
    """What `up` checks it installed is taken as done: these tests are about starting, and
    resolving the jar sets of a fresh state dir runs Maven for over a minute."""
    monkeypatch.setattr(manager.install, "install_all", lambda settings: {})


def test_a_port_held_by_someone_else_is_reported_with_its_holder(tmp_path, installed):
    import socket

    settings = _throwaway_settings(tmp_path, free_port())
    # Not the S3 port itself: one of weed's internal ones, which `up` checks too.
    held = all_services(settings)["s3"].listen_ports[-1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", held))
        squatter.listen()
        with pytest.raises(manager.StackError, match=rf"^s3: port {held} is taken") as taken:
            manager.up(settings, ["s3"])
    assert f"pid {os.getpid()} ({process.describe_process(os.getpid())})" in str(taken.value)


def test_a_service_that_dies_is_named_with_its_log_tail(tmp_path, monkeypatch, installed):
    from tunelake_ops.stack.services import S3Service

    crash = "import sys; print('fatal: bad identities file'); sys.exit(3)"
    monkeypatch.setattr(S3Service, "command", lambda self: [sys.executable, "-c", crash])
    with pytest.raises(manager.StackError, match=r"^s3: exited while starting") as failed:
        manager.up(_throwaway_settings(tmp_path, free_port()), ["s3"])
    assert "fatal: bad identities file" in failed.value.log_tail


# --- a stack that starts from any directory -----------------------------------------------


@pytest.fixture
def open_modes(monkeypatch):
    """The mode each file was created with, by path, as ``os.open`` was asked for it."""
    modes: dict[Path, int] = {}
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            modes[Path(path)] = mode
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)  # nothing but the code's own mode may narrow what it creates
    yield modes
    os.umask(old_umask)


def test_write_private_creates_the_file_0600_and_narrows_an_existing_one(tmp_path, open_modes):
    from tunelake_ops.stack.files import write_private

    fresh, existing = tmp_path / "new" / "secret", tmp_path / "old-secret"
    existing.write_text("old")
    existing.chmod(0o644)

    write_private(fresh, "s3cret")
    write_private(existing, "n3w")

    assert open_modes == {fresh: 0o600, existing: 0o600}
    assert (fresh.read_text(), existing.read_text()) == ("s3cret", "n3w")
    assert {oct(p.stat().st_mode & 0o777) for p in (fresh, existing)} == {"0o600"}


def test_secret_files_of_the_stack_are_private_from_creation(tmp_path, open_modes):
    from tunelake_ops.airflow_env import passwords_file, write_passwords_file
    from tunelake_ops.stack.services import S3Service

    settings = Settings(_env_file=None, state_dir=tmp_path)
    s3 = S3Service(settings)
    s3.prepare()
    write_passwords_file(settings)

    secrets = {s3.identities_file, passwords_file(settings)}
    assert {path: open_modes.get(path) for path in secrets} == dict.fromkeys(secrets, 0o600)
    assert "tunelake-local-secret" in s3.identities_file.read_text()


@pytest.fixture
def private_tree():
    """/tmp/<x> (0755) / private (0700) / checkout / .tunelake: a clone in a private dir."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir="/tmp"))
    base.chmod(0o755)
    private = base / "private"
    state = private / "checkout" / ".tunelake"
    state.mkdir(parents=True)
    private.chmod(0o700)
    yield private, state
    shutil.rmtree(base)


SOME_OTHER_UID = 54_321  # owns nothing here, and belongs to none of the files' groups


def test_first_unreachable_names_the_directory_in_the_way(private_tree):
    from tunelake_ops.stack.files import first_unreachable

    private, state = private_tree
    target = state / "data" / "postgres"  # not created yet: whoever creates it owns it

    assert first_unreachable(target, SOME_OTHER_UID, ()) == private
    private.chmod(0o701)  # search (x) is enough to pass through; reading is not needed
    assert first_unreachable(target, SOME_OTHER_UID, ()) is None
    private.chmod(0o710)
    assert first_unreachable(target, SOME_OTHER_UID, ()) == private
    assert first_unreachable(target, SOME_OTHER_UID, (private.stat().st_gid,)) is None
    (state.parent).chmod(0o700)
    private.chmod(0o755)
    assert first_unreachable(target, SOME_OTHER_UID, ()) == state.parent


def test_up_refuses_a_cluster_its_user_cannot_reach_and_names_the_blocker(
    private_tree, monkeypatch
):
    from tunelake_ops.stack.services import PostgresService

    private, state = private_tree
    cluster = state / "data" / "postgres"
    monkeypatch.setattr(PostgresService, "run_as", property(lambda self: "nobody"))
    monkeypatch.setattr(PostgresService, "data_dir", property(lambda self: cluster))
    svc = PostgresService(Settings(_env_file=None, state_dir=state))

    with pytest.raises(manager.StackError, match=r"^postgres: runs as user 'nobody'") as refused:
        manager.require_reachable(svc)
    assert f"cannot reach {cluster}: {private} (drwx------ " in str(refused.value)


def test_as_root_each_state_dir_gets_its_own_cluster_outside_it(tmp_path, monkeypatch):
    from tunelake_ops.stack import services
    from tunelake_ops.stack.services import POSTGRES_CLUSTERS_ROOT, PostgresService

    monkeypatch.setattr(services.os, "geteuid", lambda: 0)
    first, second = (PostgresService(Settings(state_dir=tmp_path / n)) for n in ("a", "b"))

    assert first.run_as == "postgres"
    assert first.data_dir.parent == POSTGRES_CLUSTERS_ROOT == second.data_dir.parent
    assert first.data_dir != second.data_dir
    assert PostgresService(Settings(state_dir=tmp_path / "x" / ".." / "a")).data_dir == (
        first.data_dir
    )


def test_as_another_user_the_cluster_stays_in_the_state_dir(tmp_path, monkeypatch):
    from tunelake_ops.stack import services
    from tunelake_ops.stack.services import PostgresService

    monkeypatch.setattr(services.os, "geteuid", lambda: 1000)
    svc = PostgresService(Settings(state_dir=tmp_path))
    assert svc.run_as is None
    assert svc.data_dir == tmp_path / "data" / "postgres"


def test_a_recorded_cluster_is_found_again_but_not_by_a_copy(tmp_path, monkeypatch):
    import json
    import shutil

    from tunelake_ops.stack import services
    from tunelake_ops.stack.services import PostgresService

    monkeypatch.setattr(services.os, "geteuid", lambda: 0)
    own = PostgresService(Settings(state_dir=tmp_path / "a"))
    elsewhere = tmp_path / "clusters" / "kept"
    own.location_file.parent.mkdir(parents=True)
    own.location_file.write_text(
        json.dumps({"state_dir": str(tmp_path / "a"), "cluster": str(elsewhere)})
    )
    assert own.data_dir == elsewhere

    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    copy = PostgresService(Settings(state_dir=tmp_path / "copy"))
    assert copy.data_dir not in (elsewhere, own.data_dir)


def test_a_cluster_made_in_the_state_dir_before_keeps_its_data(tmp_path, monkeypatch):
    from tunelake_ops.stack import services
    from tunelake_ops.stack.services import PostgresService

    monkeypatch.setattr(services.os, "geteuid", lambda: 0)
    legacy = tmp_path / "data" / "postgres"
    legacy.mkdir(parents=True)
    (legacy / "PG_VERSION").write_text("15\n")
    assert PostgresService(Settings(state_dir=tmp_path)).data_dir == legacy


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch):
    # uuid bytes whose URL-safe base64 starts with "-" (0xf8 -> "-"), then ordinary ones.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(int=1)])
    monkeypatch.setattr(stack_services.uuid, "uuid4", lambda: next(draws))
    cluster_id = stack_services._kafka_cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
