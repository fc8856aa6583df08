"""`up` and `down` from a checkout inside a directory only its owner may enter.

Root's home and ``mktemp -d`` folders are mode 0700. As root, PostgreSQL runs as the
``postgres`` user, which could not reach a data folder inside such a checkout; the clone
here runs its own code (``python -m tunelake_ops`` from the clone) on ports of its own.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TEST_STACK_PORTS
from tunelake.settings import SOURCE_ROOT, Settings
from tunelake_ops.stack import process
from tunelake_ops.stack.probes import postgres_ready

CLONE_POSTGRES_PORT = TEST_STACK_PORTS["test_stack_anywhere"]["postgres_port"]


def _tunelake(clone: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNELAKE_", "AIRFLOW"))}
    env |= {"PYTHONPATH": str(clone), "TUNELAKE_POSTGRES_PORT": str(CLONE_POSTGRES_PORT)}
    return subprocess.run(
        [sys.executable, "-m", "tunelake_ops", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def private_clone(settings: Settings) -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="tunelake-private-"))
    clone = parent / "tunelake"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=SOURCE_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    # The checkout's files as they are now (committed or not), without its state or venv.
    for name in filter(None, listed.split("\0")):
        source = SOURCE_ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    # The same POMs resolve to the same jars in the shared Maven cache: start from this
    # checkout's resolved jar lists instead of running Maven for a minute.
    shutil.copytree(settings.state_dir / "jars", clone / ".tunelake" / "jars")
    yield clone
    if process.running_process(clone / ".tunelake" / "run" / "postgres.pid") is not None:
        _tunelake(clone, "down")
    location = clone / ".tunelake" / "data" / "postgres.location"
    if location.is_file():
        shutil.rmtree(json.loads(location.read_text())["cluster"], ignore_errors=True)
    shutil.rmtree(parent)


def test_up_and_down_from_a_checkout_in_a_private_directory(private_clone):
    clone = private_clone
    assert stat.S_IMODE(clone.parent.stat().st_mode) == 0o700

    started = _tunelake(clone, "up", "postgres")

    assert started.returncode == 0, started.stderr[-3000:]
    assert "started: postgres" in started.stderr
    assert postgres_ready(Settings(_env_file=None, postgres_port=CLONE_POSTGRES_PORT))
    state = clone / ".tunelake"
    server = process.read_pid_file(state / "run" / "postgres.pid")
    assert server is not None and process.is_alive(server)
    record = json.loads((state / "data" / "postgres.location").read_text())
    cluster = Path(record["cluster"])
    assert record["state_dir"] == str(state.resolve())
    assert (cluster / "PG_VERSION").is_file()
    if os.geteuid() == 0:
        # Outside the private checkout, in a folder of the postgres user only.
        assert cluster.parent == Path("/var/lib/postgresql/tunelake")
        info = cluster.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (pwd.getpwnam("postgres").pw_uid, 0o700)
    else:
        assert cluster == state / "data" / "postgres"

    stopped = _tunelake(clone, "down")

    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped: postgres" in stopped.stderr
    assert not process.is_alive(server)
    assert not postgres_ready(Settings(_env_file=None, postgres_port=CLONE_POSTGRES_PORT))
    leftovers = subprocess.run(["pgrep", "-f", str(cluster)], capture_output=True, text=True)
    assert leftovers.stdout.split() == []
