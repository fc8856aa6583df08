"""``tunelake cdc`` against a stand-in Kafka Connect REST API (a local HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from tunelake.settings import Settings, get_settings
from tunelake_ops.cli import app

pytestmark = pytest.mark.unit

NAME = "user-profiles-cdc"


def _status(*task_states: str, connector: str = "RUNNING") -> dict:
    worker = "connect:8083"
    return {
        "name": NAME,
        "connector": {"state": connector, "worker_id": worker},
        "tasks": [
            {"id": i, "state": state, "worker_id": worker, "trace": "boom\n\tat x"}
            for i, state in enumerate(task_states)
        ],
        "type": "source",
    }


class FakeConnect(ThreadingHTTPServer):
    """Answers GET .../status with ``status`` (None: 404) and records each PUT config."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status: dict | None = None
        self.configs: list[tuple[str, dict]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeConnect

    def _send(self, code: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path != f"/connectors/{NAME}/status" or self.server.status is None:
            self._send(404, {"error_code": 404, "message": "not found"})
        else:
            self._send(200, self.server.status)

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.configs.append((self.path, body))
        self.server.status = _status("RUNNING")
        self._send(201, {"name": NAME, "config": body, "tasks": []})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeConnect]:
    server = FakeConnect()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TUNELAKE_KAFKA_CONNECT_URL", server.url)
    monkeypatch.setenv("TUNELAKE_CDC_CONNECTOR_NAME", NAME)
    get_settings.cache_clear()
    yield server
    get_settings.cache_clear()
    server.shutdown()
    server.server_close()


def _run(*args: str):
    return CliRunner().invoke(app, ["cdc", *args])


def test_status_of_a_running_connector_exits_0(connect: FakeConnect) -> None:
    connect.status = _status("RUNNING")
    result = _run("status")
    assert result.exit_code == 0, result.output
    assert f"connector {NAME}: RUNNING on connect:8083" in result.output
    assert "task 0: RUNNING" in result.output


@pytest.mark.parametrize(
    "status",
    [_status("FAILED"), _status(), _status("RUNNING", connector="PAUSED")],
    ids=["failed-task", "no-task", "paused"],
)
def test_status_exits_1_unless_connector_and_tasks_run(connect: FakeConnect, status) -> None:
    connect.status = status
    result = _run("status")
    assert result.exit_code == 1
    assert f"connector {NAME}: {status['connector']['state']}" in result.output


def test_status_of_a_missing_connector_exits_1_naming_it(connect: FakeConnect) -> None:
    result = _run("status")
    assert result.exit_code == 1
    assert f"no connector {NAME}" in result.output


def test_status_with_connect_unreachable_exits_1_naming_the_url(
    connect: FakeConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = connect.url
    connect.shutdown()
    connect.server_close()
    result = _run("status")
    assert result.exit_code == 1
    assert f"Kafka Connect at {url}" in result.output


def test_apply_migrates_then_puts_connector_config_and_waits(
    connect: FakeConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingestion import profiles
    from ingestion.cdc import connector_config

    order = []

    def fake_migrate(settings: Settings) -> list[str]:
        order.append(("migrate", len(connect.configs)))
        return ["0001_user_profiles"]

    monkeypatch.setattr(profiles, "migrate", fake_migrate)
    result = _run("apply", "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert order == [("migrate", 0)], "migrations run before the connector is applied"
    assert "migrations applied: 0001_user_profiles" in result.output
    ((path, body),) = connect.configs
    assert path == f"/connectors/{NAME}/config"
    assert body == connector_config(get_settings())
    assert f"connector {NAME}: RUNNING" in result.output


def test_apply_fails_with_the_failed_tasks_trace(
    connect: FakeConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingestion import profiles

    monkeypatch.setattr(profiles, "migrate", lambda settings: [])

    class FailingStart(_Handler):
        def do_PUT(self) -> None:
            super().do_PUT()
            self.server.status = _status("FAILED")

    connect.RequestHandlerClass = FailingStart
    result = _run("apply", "--timeout", "5")
    assert result.exit_code == 1
    assert "task failed" in result.output and "boom" in result.output
