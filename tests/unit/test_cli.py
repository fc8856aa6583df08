from __future__ import annotations

import subprocess
import sys

from tunelake.settings import LOCAL_SECRET_DEFAULTS


def _tunelake(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "tunelake_ops", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_env_prints_assignments_a_shell_can_eval():
    result = _tunelake("env", TUNELAKE_S3_ENDPOINT_URL="http://minio:9000")
    assert result.returncode == 0, result.stderr
    script = result.stdout + '\nprintf "%s|%s" "$TUNELAKE_S3_ENDPOINT_URL" "$AWS_ENDPOINT_URL"'
    evaluated = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert evaluated.stdout == "http://minio:9000|http://minio:9000"
    assert LOCAL_SECRET_DEFAULTS["s3_secret_key"] not in result.stdout


def test_env_show_secrets_includes_them():
    result = _tunelake("env", "--show-secrets")
    assert result.returncode == 0, result.stderr
    assert f"TUNELAKE_S3_SECRET_KEY={LOCAL_SECRET_DEFAULTS['s3_secret_key']}" in result.stdout


def test_logs_of_an_unknown_service_fails_naming_the_known_ones():
    result = _tunelake("logs", "zookeeper")
    assert result.returncode == 1
    assert "zookeeper" in result.stderr
    assert "kafka" in result.stderr


def test_help_lists_the_stack_verbs():
    result = _tunelake("--help")
    assert result.returncode == 0
    for verb in ("up", "down", "status", "logs", "env", "demo", "retrain", "model"):
        assert verb in result.stdout
