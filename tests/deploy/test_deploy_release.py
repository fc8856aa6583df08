"""scripts/deploy-release.sh and scripts/smoke-test.sh, run for real with stand-ins for
helm, kubectl and the service: the order of the upgrades, the smoke test's checks, and
that a failure rolls back every release the run upgraded."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from ingestion.validity import SYNTHETIC_USER_PREFIX

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SMOKE_KEY = "smoke-read-key"

# helm and kubectl stand-ins: each call is logged as a JSON line; what they answer comes
# from FAKE_* variables.
FAKE_HELM = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["helm", *args]) + "\\n")
if args[0] == "history" and "--output" in args:
    revision = os.environ.get("FAKE_REVISION_" + args[1].upper())
    if revision is None:
        sys.exit("Error: release: not found")
    print(json.dumps([{{"revision": int(revision) - 1, "status": "superseded"}},
                      {{"revision": int(revision), "status": "deployed"}}]))
elif args[0] == "upgrade" and os.environ.get("FAKE_FAIL") == "upgrade " + args[2]:
    sys.exit(1)
elif args[0] == "test" and os.environ.get("FAKE_FAIL") == "test":
    sys.exit(1)
"""
FAKE_KUBECTL = f"""#!{sys.executable}
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["kubectl", *args]) + "\\n")
if "port-forward" in args:
    time.sleep(60)
elif "get" in args and "sparkapplication" in args:
    print(os.environ.get("FAKE_BRONZE_STATE", "RUNNING"), end="")
elif "exec" in args:
    script = sys.stdin.read()
    assert "def landed" in script, "the Bronze check arrives on stdin"
    fresh = os.environ.get("FAKE_BRONZE_FRESH", "1") == "1"
    print("bronze: landed" if fresh else "bronze: not in Bronze")
    sys.exit(0 if fresh else 1)
"""


class _FakeService(http.server.BaseHTTPRequestHandler):
    recommendations_status = 200
    users: ClassVar[list[str]]  # user ids asked for, per server (see fake_service)

    def do_GET(self) -> None:
        match = re.fullmatch(r"/users/([^/]+)/recommendations", self.path)
        if self.path == "/readyz":
            self._send(200, b'{"status": "ready"}')
        elif match:
            if self.headers.get("X-API-Key") != SMOKE_KEY:
                self._send(401, b'{"detail": "missing or unknown X-API-Key header"}')
                return
            type(self).users.append(match.group(1))
            body = {"request_id": "req-1", "model_version": "v1", "items": [{"track_id": "t1"}]}
            self._send(type(self).recommendations_status, json.dumps(body).encode())
        else:
            self._send(404, b"{}")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_service() -> Iterator[tuple[int, type[_FakeService]]]:
    handler = type("Handler", (_FakeService,), {"users": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"helm": FAKE_HELM, "kubectl": FAKE_KUBECTL}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
        "SMOKE_API_KEY": SMOKE_KEY,
        "SMOKE_TIMEOUT": "5",
        "SMOKE_BRONZE_TIMEOUT": "5",
        "AIRFLOW_CHART_REPO": "https://charts.example.invalid/airflow",
        "AIRFLOW_CHART_VERSION": "1.2.3",
    }


def calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def helm_steps(env: dict[str, str]) -> list[tuple[str, ...]]:
    """The helm calls that change or check a release: (verb, release[, revision])."""
    steps = []
    for call in calls(env):
        if call[0] != "helm":
            continue
        verb = call[1]
        if verb == "upgrade":
            steps.append(("upgrade", call[3]))
        elif verb == "test":
            steps.append(("test", call[2]))
        elif verb == "rollback":
            steps.append(("rollback", call[2], call[3]))
    return steps


def deploy(env: dict[str, str], *extra_env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy-release.sh"), "staging", "ghcr.io/acme", "abc123"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, **dict(extra_env)},
    )


def test_deploy_installs_the_chart_before_airflow_then_checks(
    fakes: dict[str, str], fake_service: tuple[int, type]
) -> None:
    port, handler = fake_service
    result = deploy(
        fakes,
        ("SMOKE_LOCAL_PORT", str(port)),
        ("FAKE_REVISION_TUNELAKE", "12"),
        ("FAKE_REVISION_AIRFLOW", "7"),
    )
    assert result.returncode == 0, result.stderr
    assert helm_steps(fakes) == [
        ("upgrade", "tunelake"),
        ("upgrade", "airflow"),
        ("test", "tunelake"),
    ]
    upgrades = [c for c in calls(fakes) if c[:2] == ["helm", "upgrade"]]
    assert "image.tag=abc123" in upgrades[0] and "images.airflow.tag=abc123" in upgrades[1]
    assert all("--rollback-on-failure" in u and "--wait" in u for u in upgrades)
    assert upgrades[1][upgrades[1].index("--version") :][:2] == ["--version", "1.2.3"]
    # The smoke test ran against the port-forward, as a synthetic user.
    assert len(handler.users) == 1 and handler.users[0].startswith(SYNTHETIC_USER_PREFIX)
    assert "smoke: Bronze fresh" in result.stdout


@pytest.mark.parametrize(
    ("failure", "extra", "upgraded"),
    [
        ("Bronze not fresh", ("FAKE_BRONZE_FRESH", "0"), ["tunelake", "airflow"]),
        ("Bronze not running", ("FAKE_BRONZE_STATE", "FAILED"), ["tunelake", "airflow"]),
        ("helm test", ("FAKE_FAIL", "test"), ["tunelake", "airflow"]),
        ("Airflow upgrade", ("FAKE_FAIL", "upgrade airflow"), ["tunelake", "airflow"]),
        ("chart upgrade", ("FAKE_FAIL", "upgrade tunelake"), ["tunelake"]),
    ],
)
def test_a_failure_rolls_back_every_release_the_run_upgraded(
    fakes: dict[str, str],
    fake_service: tuple[int, type],
    failure: str,
    extra: tuple[str, str],
    upgraded: list[str],
) -> None:
    port, _ = fake_service
    result = deploy(
        fakes,
        ("SMOKE_LOCAL_PORT", str(port)),
        ("FAKE_REVISION_TUNELAKE", "12"),
        ("FAKE_REVISION_AIRFLOW", "7"),
        extra,
    )
    assert result.returncode == 1, failure
    previous = {"tunelake": "12", "airflow": "7"}
    rollbacks = [step for step in helm_steps(fakes) if step[0] == "rollback"]
    # Newest first, each to the revision it had before this run.
    assert rollbacks == [("rollback", r, previous[r]) for r in reversed(upgraded)], failure
    assert "rolling back what this run upgraded" in result.stderr


def test_a_first_install_that_fails_has_nothing_to_roll_back_to(
    fakes: dict[str, str], fake_service: tuple[int, type]
) -> None:
    port, _ = fake_service
    result = deploy(
        fakes,
        ("SMOKE_LOCAL_PORT", str(port)),
        ("FAKE_REVISION_TUNELAKE", "12"),
        ("FAKE_BRONZE_FRESH", "0"),
    )
    assert result.returncode == 1
    assert [s for s in helm_steps(fakes) if s[0] == "rollback"] == [("rollback", "tunelake", "12")]
    assert "airflow: first install" in result.stderr


def smoke(
    env: dict[str, str], port: int, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "smoke-test.sh"), f"http://127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env, **extra},
    )


def test_smoke_test_checks_the_service_bronze_running_and_fresh(
    fakes: dict[str, str], fake_service: tuple[int, type]
) -> None:
    port, handler = fake_service
    result = smoke(fakes, port, "synthetic-smoke-42")
    assert result.returncode == 0, result.stderr
    assert handler.users == ["synthetic-smoke-42"]
    kube = [c for c in calls(fakes) if c[0] == "kubectl"]
    assert kube[0][3:6] == ["get", "sparkapplication", "tunelake-bronze-streaming"]
    (exec_call,) = [c for c in kube if "exec" in c]
    # The Bronze check runs in the service pod and looks for this request's impression.
    assert exec_call[exec_call.index("exec") + 2] == "deploy/tunelake-service"
    assert exec_call[-2:] == ["req-1", "5"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"FAKE_BRONZE_STATE": "SUBMITTED"}, "is SUBMITTED, not RUNNING"),
        ({"FAKE_BRONZE_FRESH": "0"}, "Bronze is not fresh"),
        ({"SMOKE_API_KEY": "not-a-key"}, "answered 401"),
    ],
)
def test_smoke_test_fails_on_each_check(
    fakes: dict[str, str], fake_service: tuple[int, type], extra: dict[str, str], message: str
) -> None:
    port, _ = fake_service
    result = smoke(fakes, port, **extra)
    assert result.returncode == 1
    assert message in result.stderr


def test_smoke_test_fails_when_recommendations_fail(
    fakes: dict[str, str], fake_service: tuple[int, type]
) -> None:
    port, handler = fake_service
    handler.recommendations_status = 503
    result = smoke(fakes, port)
    assert result.returncode == 1
    assert "answered 503" in result.stderr


def test_smoke_test_only_sends_synthetic_users(
    fakes: dict[str, str], fake_service: tuple[int, type]
) -> None:
    port, handler = fake_service
    result = smoke(fakes, port, "u-42")
    assert result.returncode == 64
    assert handler.users == []
    result = smoke(fakes, port)
    assert result.returncode == 0, result.stderr
    assert handler.users[0].startswith(f"{SYNTHETIC_USER_PREFIX}smoke-")


def test_smoke_test_gives_up_on_a_service_that_never_gets_ready(fakes: dict[str, str]) -> None:
    result = smoke({**fakes, "SMOKE_TIMEOUT": "1"}, 9)  # discard port: nothing listens
    assert result.returncode == 1
    assert "did not answer 200 in time" in result.stderr


def test_the_bronze_check_finds_the_request_in_a_delta_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/smoke/bronze_has_request.py against a local Delta table shaped like Bronze."""
    from datetime import UTC, datetime

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    import tunelake.clients

    today = str(datetime.now(UTC).date())
    table = tmp_path / "bronze"
    write_deltalake(
        str(table),
        pa.table({"request_id": ["req-1", "req-2"], "ingest_date": [today, "2020-01-01"]}),
        partition_by=["ingest_date"],
    )
    monkeypatch.setattr(
        tunelake.clients, "delta_table", lambda settings, uri: DeltaTable(str(table))
    )
    namespace: dict = {}
    source = ROOT / "deploy" / "smoke" / "bronze_has_request.py"
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    assert namespace["landed"]("req-1")
    assert not namespace["landed"]("req-2"), "only today's and yesterday's partitions"
    assert not namespace["landed"]("req-3")
    assert namespace["main"](["req-3", "0"]) == 1
