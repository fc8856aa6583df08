from __future__ import annotations

from pathlib import Path

import pytest

from tunelake_ops.stack import install


@pytest.mark.parametrize(
    ("jar", "name"),
    [
        ("/m2/org/apache/hadoop/hadoop-client-api-3.4.2.jar", "hadoop-client-api"),
        ("delta-spark_4.1_2.13-4.4.0.jar", "delta-spark_4.1_2.13"),
        ("spark-sql-kafka-0-10_2.13-4.1.1.jar", "spark-sql-kafka-0-10_2.13"),
        ("wildfly-openssl-2.1.4.Final.jar", "wildfly-openssl"),
        ("bundle-2.29.52.jar", "bundle"),
    ],
)
def test_artifact_name_strips_the_version(jar, name):
    assert install.artifact_name(jar) == name


def test_spark_extras_never_shadow_pyspark_jars(settings):
    extras = {install.artifact_name(j) for j in install.read_classpath(settings, "spark")}
    assert not extras & install.pyspark_jar_names()
    assert {
        "delta-spark_4.1_2.13",
        "spark-sql-kafka-0-10_2.13",
        "spark-avro_2.13",
        "hadoop-aws",
        "bundle",
    } <= extras
    assert all(Path(j).is_file() for j in install.read_classpath(settings, "spark"))


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_find_java_picks_the_oldest_jdk_that_is_new_enough(tmp_path, monkeypatch):
    _fake_jdk(tmp_path, "jdk17", "17.0.15")
    _fake_jdk(tmp_path, "jdk25", "25.0.3")
    _fake_jdk(tmp_path, "jdk21", "21.0.2")
    monkeypatch.setattr(install, "JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert install.find_java(17) == str(tmp_path / "jdk17" / "bin" / "java")
    assert install.find_java(21) == str(tmp_path / "jdk21" / "bin" / "java")
    with pytest.raises(install.InstallError, match="no JDK 26"):
        install.find_java(26)


def test_find_java_reads_setup_java_variables(tmp_path, monkeypatch):
    home = _fake_jdk(tmp_path / "runner", "Java_Temurin-Hotspot_jdk", "25.0.1")
    monkeypatch.setattr(install, "JVM_ROOTS", (tmp_path / "empty",))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("JAVA_HOME_25_X64", str(home))
    assert install.find_java(21) == str(home / "bin" / "java")


def test_missing_jar_set_names_the_fix(tmp_path):
    from tunelake.settings import Settings

    with pytest.raises(install.InstallError, match="tunelake up"):
        install.read_classpath(Settings(state_dir=tmp_path), "spark")
