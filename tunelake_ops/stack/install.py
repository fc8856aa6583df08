"""Install what the local stack needs: JVM artifacts through Maven, Debian packages.

Every download goes through Maven (into the user's ``~/.m2``) or apt; nothing is fetched at
service or job start. Each JVM artifact set is a POM under ``jvm/<name>/``; resolving it
writes ``<state>/jars/<name>.classpath`` (one jar path a line), stamped with the POM's hash
so a warm ``up`` skips Maven entirely.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from tunelake.settings import SOURCE_ROOT, Settings

log = logging.getLogger(__name__)

JVM_DIR = SOURCE_ROOT / "jvm"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
APT_PACKAGES = {"postgres": "postgresql-15", "browser": "chromium"}
CHROMIUM = Path("/usr/bin/chromium")
POSTGRES_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
REGISTRY_MIN_JAVA = 21
# Trino 476 is built for Java 24 (and runs on the machine's Temurin 25).
TRINO_MIN_JAVA = 24


class InstallError(RuntimeError):
    """A prerequisite of the local stack could not be installed."""


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise InstallError(f"{what} failed ({' '.join(command[:3])} ...):\n" + "\n".join(output))


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def read_classpath(settings: Settings, jar_set: str) -> list[str]:
    try:
        return settings.jar_set(jar_set)
    except FileNotFoundError as exc:
        raise InstallError(str(exc)) from None


_JAR_VERSION = re.compile(r"-\d+\.\d[^/]*\.jar$")


def artifact_name(jar: str) -> str:
    """``/x/hadoop-client-api-3.4.2.jar`` -> ``hadoop-client-api``."""
    return _JAR_VERSION.sub("", Path(jar).name)


def pyspark_jar_names() -> set[str]:
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(str(j)) for j in jars_dir.glob("*.jar")}


def resolve_jar_set(settings: Settings, jar_set: str, exclude: set[str] = frozenset()) -> list[str]:
    """Resolve ``jvm/<jar_set>/pom.xml`` to jar paths in the Maven cache (cached by POM hash).

    ``exclude`` drops artifacts by name: Spark's extras must not shadow the jars pyspark
    already ships (older Jackson, slf4j 1.x, a second Hadoop client...).
    """
    pom = JVM_DIR / jar_set / "pom.xml"
    out = settings.classpath_file(jar_set)
    stamp = f"# pom {_pom_digest(pom)}"
    if out.is_file() and out.read_text().splitlines()[:1] == [stamp]:
        jars = read_classpath(settings, jar_set)
        if all(Path(j).is_file() for j in jars):
            return jars
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".raw")
    log.info("resolving %s jars with Maven", jar_set)
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:build-classpath",
            "-Dmdep.includeScope=runtime",
            f"-Dmdep.outputFile={raw}",
        ],
        f"resolving the {jar_set} jars",
    )
    jars = sorted(j for j in raw.read_text().strip().split(os.pathsep) if j)
    raw.unlink()
    jars = [j for j in jars if artifact_name(j) not in exclude]
    out.write_text("\n".join([stamp, *jars]) + "\n")
    return jars


def install_distribution(settings: Settings, jar_set: str) -> Path:
    """Unpack the single archive that ``jvm/<jar_set>/pom.xml`` names into the user cache."""
    pom = JVM_DIR / jar_set / "pom.xml"
    target = settings.cache_dir / "dist" / f"{jar_set}-{_pom_digest(pom)}"
    if (target / ".complete").is_file():
        return target
    (archive,) = resolve_jar_set(settings, jar_set)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log.info("unpacking %s into %s", Path(archive).name, target)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def trino_home(settings: Settings) -> Path:
    """The unpacked Trino server (its ``lib/`` and ``plugin/``)."""
    (home,) = install_distribution(settings, "trino").glob("trino-server-*")
    return home


def postgres_bin_dir() -> Path:
    for candidate in POSTGRES_BIN_DIRS:
        if (candidate / "postgres").is_file():
            return candidate
    install_debian_packages([APT_PACKAGES["postgres"]])
    for candidate in POSTGRES_BIN_DIRS:
        if (candidate / "postgres").is_file():
            return candidate
    raise InstallError(f"{APT_PACKAGES['postgres']} installed but no postgres binary found")


def install_debian_packages(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise InstallError(
            f"missing Debian packages {packages}: install them (sudo apt-get install "
            f"{' '.join(packages)}) or run `tunelake up` as root"
        )
    log.info("installing Debian packages %s", packages)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise InstallError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")


JVM_ROOTS = (Path("/usr/lib/jvm"),)


def _java_major(java_home: Path) -> int | None:
    try:
        release = (java_home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java(min_major: int = 17) -> str:
    """The ``java`` of the oldest installed JDK at least ``min_major``.

    Kafka runs on 17; Apicurio Registry 3.3 is built for 21+ (the machine's second JDK).
    """
    homes = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    # CI runners (actions/setup-java) announce every JDK they installed as JAVA_HOME_<N>_X64.
    homes += [
        Path(v) for k, v in sorted(os.environ.items()) if re.fullmatch(r"JAVA_HOME_\d+_\w+", k)
    ]
    for root in JVM_ROOTS:
        if root.is_dir():
            homes += sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    found = sorted(
        (major, str(home / "bin" / "java"))
        for home in homes
        if (major := _java_major(home)) is not None
        and major >= min_major
        and (home / "bin" / "java").is_file()
    )
    if not found:
        raise InstallError(
            f"no JDK {min_major}+ found (looked at JAVA_HOME and {', '.join(map(str, JVM_ROOTS))})"
        )
    return found[0][1]


def chromium() -> Path:
    """Debian's headless-capable Chromium, for the UI tests (installed when missing)."""
    if not CHROMIUM.is_file():
        install_debian_packages([APT_PACKAGES["browser"]])
    return CHROMIUM


def require_maven() -> None:
    if not shutil.which("mvn"):
        raise InstallError("no Maven found: install Maven 3.8+ (mvn on PATH)")


def install_all(settings: Settings) -> dict[str, object]:
    """Everything `up` needs before it starts a process; fast when already installed."""
    require_maven()
    return {
        "java": find_java(17),
        "java_registry": find_java(REGISTRY_MIN_JAVA),
        "kafka": resolve_jar_set(settings, "kafka"),
        "spark": resolve_jar_set(settings, "spark", exclude=pyspark_jar_names()),
        "registry": install_distribution(settings, "registry"),
        "connect": resolve_jar_set(settings, "connect"),
        "connect-avro": resolve_jar_set(settings, "connect-avro"),
        "debezium": install_distribution(settings, "debezium"),
        "java_trino": find_java(TRINO_MIN_JAVA),
        "trino": trino_home(settings),
        "postgres": postgres_bin_dir(),
    }
