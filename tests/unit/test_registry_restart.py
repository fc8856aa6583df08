"""The schema registry client (one long-lived httpx client per producer) survives a restart
of the registry: the first request after it is back succeeds, nothing to rebuild."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import httpx
import pytest

from ingestion.registry import SchemaRegistry
from tunelake_ops.stack.ports import accepting, free_port
from tunelake_ops.stack.process import wait_until

FAKE_REGISTRY = textwrap.dedent(
    """
    import http.server, sys

    class Subjects(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real registry

        def do_GET(self):
            body = b'["listens-value"]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Subjects).serve_forever()
    """
)


def _start(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", FAKE_REGISTRY, str(port)])
    assert wait_until(lambda: accepting("127.0.0.1", port, timeout=0.2), timeout_s=10)
    return proc


def test_the_same_client_works_again_after_a_registry_restart():
    port = free_port()
    proc = _start(port)
    registry = SchemaRegistry(f"http://127.0.0.1:{port}", timeout_s=2)
    try:
        assert registry.subjects() == ["listens-value"]  # a pooled keep-alive connection
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with pytest.raises(httpx.ConnectError):
            registry.subjects()
        proc = _start(port)
        assert registry.subjects() == ["listens-value"]
    finally:
        registry.close()
        proc.kill()
        proc.wait()
