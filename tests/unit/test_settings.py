from __future__ import annotations

import shlex
import subprocess

import pytest
from pydantic import ValidationError

from tunelake.settings import LOCAL_SECRET_DEFAULTS, Environment, Settings
from tunelake_ops.shell_env import shell_assignments


def test_defaults_point_at_the_local_stack():
    s = Settings(_env_file=None)
    assert s.environment is Environment.LOCAL
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.s3_endpoint_url == "http://127.0.0.1:8333"
    assert s.schema_registry_url.endswith("/apis/ccompat/v7")
    assert s.topics == (
        "recommendation_events",
        "user_listening_history",
        "recommendation_feedback",
        "user_profiles",
    )
    assert s.buckets == ("lakehouse", "checkpoints", "models")
    assert s.is_local_spark


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("TUNELAKE_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("TUNELAKE_POSTGRES_PORT", "6543")
    monkeypatch.setenv("TUNELAKE_LAKEHOUSE_BUCKET", "prod-lake")
    monkeypatch.setenv("TUNELAKE_SPARK_MASTER", "spark://spark-master:7077")
    s = Settings(_env_file=None)
    assert s.kafka_bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert s.postgres_port == 6543
    assert s.bronze_path("user_listening_history") == (
        "s3a://prod-lake/bronze/user_listening_history"
    )
    assert s.quarantine_path("t") == "s3a://prod-lake/bronze/_quarantine/t"
    assert s.silver_path("dim_track") == "s3a://prod-lake/silver/dim_track"
    assert not s.is_local_spark


def test_typed_values_are_validated(monkeypatch):
    monkeypatch.setenv("TUNELAKE_POSTGRES_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="postgres_port"):
        Settings(_env_file=None)


def test_production_refuses_the_documented_local_secrets(monkeypatch):
    monkeypatch.setenv("TUNELAKE_ENVIRONMENT", "production")
    monkeypatch.setenv("TUNELAKE_S3_SECRET_KEY", "a-real-secret")
    with pytest.raises(ValidationError, match="TUNELAKE_POSTGRES_PASSWORD"):
        Settings(_env_file=None)
    monkeypatch.setenv("TUNELAKE_POSTGRES_PASSWORD", "another-real-secret")
    with pytest.raises(ValidationError, match="TUNELAKE_API_KEYS"):
        Settings(_env_file=None)
    monkeypatch.setenv("TUNELAKE_API_KEYS", "key-a, key-b")
    assert Settings(_env_file=None).api_key_set() == {"key-a", "key-b"}
    assert Settings(_env_file=None).environment is Environment.PRODUCTION


def test_secrets_never_show_in_repr():
    s = Settings(_env_file=None)
    for secret in LOCAL_SECRET_DEFAULTS.values():
        assert secret not in repr(s)


def _eval_in_shell(lines: list[str], variable: str) -> str:
    script = "\n".join(lines) + f'\nprintf %s "${{{variable}-UNSET}}"'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def test_env_output_evaluates_in_a_shell_and_hides_secrets():
    s = Settings(_env_file=None, s3_endpoint_url="http://minio:9000", postgres_user="o'brien")
    lines = shell_assignments(s)
    assert _eval_in_shell(lines, "TUNELAKE_S3_ENDPOINT_URL") == "http://minio:9000"
    assert _eval_in_shell(lines, "AWS_ENDPOINT_URL") == "http://minio:9000"
    assert _eval_in_shell(lines, "PGUSER") == "o'brien"
    assert _eval_in_shell(lines, "TUNELAKE_S3_SECRET_KEY") == "UNSET"
    assert not any(secret in "\n".join(lines) for secret in LOCAL_SECRET_DEFAULTS.values())


def test_env_output_with_secrets_round_trips_them():
    s = Settings(_env_file=None, s3_secret_key="p@ss word$1")
    lines = shell_assignments(s, show_secrets=True)
    assert _eval_in_shell(lines, "TUNELAKE_S3_SECRET_KEY") == "p@ss word$1"
    assert _eval_in_shell(lines, "AWS_SECRET_ACCESS_KEY") == "p@ss word$1"
    assert f"export PGPASSWORD={shlex.quote(LOCAL_SECRET_DEFAULTS['postgres_password'])}" in lines


def test_every_setting_is_exported():
    names = {
        line.removeprefix("# ").removeprefix("export ").split("=")[0]
        for line in shell_assignments(Settings())
    }
    assert {f"TUNELAKE_{f.upper()}" for f in Settings.model_fields} <= names


def test_env_example_documents_exactly_the_defaults(monkeypatch):
    from tunelake.settings import SOURCE_ROOT

    example = SOURCE_ROOT / ".env.example"
    documented = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.startswith("TUNELAKE_")
    }
    for name in documented:
        monkeypatch.delenv(name, raising=False)
    from_file = Settings(_env_file=example)
    defaults = Settings(_env_file=None)
    assert from_file == defaults
    local_only = {"TUNELAKE_STATE_DIR", "TUNELAKE_CACHE_DIR"}
    assert documented | local_only == {f"TUNELAKE_{f.upper()}" for f in Settings.model_fields}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TUNELAKE_API_KEYS", "tunelake-local-key,a-real-key"),
        ("TUNELAKE_API_KEYS", "a-real-key, tunelake-local-key"),
        ("TUNELAKE_API_READ_KEYS", "reader,tunelake-local-key"),
        ("TUNELAKE_AIRFLOW_ADMIN_PASSWORD", "tunelake-local-airflow"),
    ],
)
def test_a_local_default_anywhere_in_a_secret_is_refused_outside_local(
    monkeypatch, variable, value
):
    monkeypatch.setenv("TUNELAKE_ENVIRONMENT", "staging")
    monkeypatch.setenv("TUNELAKE_S3_SECRET_KEY", "s3-real")
    monkeypatch.setenv("TUNELAKE_POSTGRES_PASSWORD", "pg-real")
    monkeypatch.setenv("TUNELAKE_API_KEYS", "a-real-key")
    Settings(_env_file=None)  # the real secrets alone pass
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        Settings(_env_file=None)


def test_the_local_airflow_login_has_no_default_outside_local(monkeypatch, tmp_path):
    assert Settings(_env_file=None).airflow_admin_password.get_secret_value() == (
        "tunelake-local-airflow"
    )
    monkeypatch.setenv("TUNELAKE_ENVIRONMENT", "production")
    monkeypatch.setenv("TUNELAKE_S3_SECRET_KEY", "s3-real")
    monkeypatch.setenv("TUNELAKE_POSTGRES_PASSWORD", "pg-real")
    monkeypatch.setenv("TUNELAKE_API_KEYS", "a-real-key")
    staging = Settings(_env_file=None, state_dir=tmp_path)
    assert staging.airflow_admin_password.get_secret_value() == ""
    from tunelake_ops.airflow_env import passwords_file, write_passwords_file

    with pytest.raises(ValueError, match="TUNELAKE_AIRFLOW_ADMIN_PASSWORD"):
        write_passwords_file(staging)  # the local stack's Airflow gets no empty login
    assert not passwords_file(staging).exists()


def test_read_only_keys_exclude_read_write_ones():
    s = Settings(_env_file=None, api_keys="rw-1, rw-2", api_read_keys="ro-1,rw-2,, ro-2 ")
    assert s.api_key_set() == {"rw-1", "rw-2"}
    assert s.api_read_key_set() == {"ro-1", "ro-2"}
