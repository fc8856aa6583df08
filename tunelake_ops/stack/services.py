"""The local stack's services: how each one is prepared, started, probed and seeded.

Each service is a real server run as a local process bound to 127.0.0.1, with its data,
config and log under ``<state_dir>``, except PostgreSQL's cluster when run as root (see
``PostgresService``):

- ``kafka``: Apache Kafka broker+controller in KRaft mode, from Maven Central jars;
- ``s3``: SeaweedFS (``weed mini``) serving the S3 API; buckets created at start;
- ``postgres``: PostgreSQL from Debian packages with ``wal_level=logical`` (for CDC);
- ``registry``: Apicurio Registry with PostgreSQL storage, Confluent-compatible API;
- ``connect``: Kafka Connect running Debezium's capture of PostgreSQL ``user_profiles``;
- ``trino``: Trino with the Delta catalog over the lake;
- ``airflow-*``: Airflow's API server, scheduler and DAG processor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tunelake.settings import SOURCE_ROOT, Settings
from tunelake_ops.stack import install, ports
from tunelake_ops.stack.files import write_private

log = logging.getLogger(__name__)


def _url_port(url: str) -> int:
    parsed = urlparse(url)
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def _kafka_cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own ``Uuid.randomUuid``, never one starting
    with "-": the storage tool's argument parser would take it for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class Service:
    """Base class: subclasses fill in how to prepare, launch and probe one server."""

    settings: Settings
    name: str = ""
    depends_on: tuple[str, ...] = ()
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30.0
    start_timeout_s: float = 120.0

    @property
    def data_dir(self) -> Path:
        return self.settings.state_dir / "data" / self.name

    @property
    def conf_dir(self) -> Path:
        return self.settings.state_dir / "conf" / self.name

    @property
    def pid_file(self) -> Path:
        return self.settings.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.state_dir / "logs" / f"{self.name}.log"

    @property
    def port(self) -> int | None:
        """The TCP port it serves on, or None for a worker-like process."""
        raise NotImplementedError

    @property
    def listen_ports(self) -> tuple[int, ...]:
        """Every TCP port the server listens on: its own and any internal ones."""
        return () if self.port is None else (self.port,)

    @property
    def run_as(self) -> str | None:
        """The system user the server runs as, when that is not the current user."""
        return None

    def paths_run_as_needs(self) -> tuple[Path, ...]:
        """What the ``run_as`` user opens itself (not through descriptors we pass it)."""
        return ()

    def prepare(self) -> None:
        """One-time setup before the first start (format storage, init data dir, configs)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def process_env(self) -> dict[str, str] | None:
        """The environment to start with; None inherits ours."""
        return None

    def healthy(self) -> bool:
        raise NotImplementedError

    def bootstrap(self) -> None:
        """Idempotent seeding once healthy (buckets, databases, topics)."""


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _java_command(java: str, heap: str, *args: str) -> list[str]:
    return [java, f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.net.preferIPv4Stack=true", *args]


def _write_log4j(conf_dir: Path, loggers: dict[str, str]) -> Path:
    """A log4j2 config: INFO to stdout (the service's log file), ``loggers`` at their levels."""
    config = conf_dir / "log4j2.properties"
    lines = [
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.stdout.ref = STDOUT",
        "appender.stdout.type = Console",
        "appender.stdout.name = STDOUT",
        "appender.stdout.layout.type = PatternLayout",
        "appender.stdout.layout.pattern = [%d] %p %m (%c)%n",
    ]
    for index, (name, level) in enumerate(loggers.items()):
        lines += [f"logger.l{index}.name = {name}", f"logger.l{index}.level = {level}"]
    config.write_text("\n".join(lines) + "\n")
    return config


KAFKA_LOGGERS = {"kafka": "INFO", "state.change.logger": "WARN"}


@dataclass
class KafkaService(Service):
    name: str = "kafka"

    @property
    def port(self) -> int:
        return ports.host_port(self.settings.kafka_bootstrap_servers.split(",")[0])[1]

    @property
    def listen_ports(self) -> tuple[int, ...]:
        return (self.port, self.settings.kafka_controller_port)

    @property
    def properties_file(self) -> Path:
        return self.conf_dir / "server.properties"

    def _classpath(self) -> str:
        return os.pathsep.join(install.read_classpath(self.settings, "kafka"))

    def prepare(self) -> None:
        ctrl = self.settings.kafka_controller_port
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{ctrl}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.settings.kafka_topic_partitions),
            # A single node: every internal topic can only have one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Producers must name topics that `up` created from settings.
            "auto.create.topics.enable": "false",
        }
        self.properties_file.write_text(_properties(properties))
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = _kafka_cluster_id()
        result = subprocess.run(
            [
                install.find_java(17),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(self.properties_file),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return _java_command(
            install.find_java(17),
            "768m",
            f"-Dlog4j2.configurationFile={_write_log4j(self.conf_dir, KAFKA_LOGGERS)}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        )

    def healthy(self) -> bool:
        from tunelake_ops.stack.probes import kafka_cluster_ready

        return kafka_cluster_ready(self.settings)

    def bootstrap(self) -> None:
        from tunelake_ops.stack.probes import ensure_topics

        ensure_topics(self.settings, self.settings.topics)


S3_VOLUMES = 200
# weed mini's servers, in the order their ports follow the S3 port.
WEED_COMPONENTS = ("s3", "master", "volume", "filer", "admin")


@dataclass
class S3Service(Service):
    name: str = "s3"
    # weed mini ignores SIGTERM for well over 10 s: give it a short grace, then SIGKILL.
    stop_timeout_s: float = 5.0

    @property
    def port(self) -> int:
        return _url_port(self.settings.s3_endpoint_url)

    @property
    def listen_ports(self) -> tuple[int, ...]:
        # weed mini runs S3, a master, a volume server, a filer and an admin server, each
        # with an HTTP and a gRPC port. Unset, a gRPC port is its HTTP port + 10000, which
        # for a test's stack (S3 on 28333) lands inside the kernel's ephemeral range.
        return tuple(range(self.port, self.port + 2 * len(WEED_COMPONENTS)))

    def _weed_ports(self) -> list[str]:
        http = {name: self.port + i for i, name in enumerate(WEED_COMPONENTS)}
        grpc = {name: port + len(WEED_COMPONENTS) for name, port in http.items()}
        flags = [f"-{name}.port={port}" for name, port in http.items()]
        return flags + [f"-{name}.port.grpc={port}" for name, port in grpc.items()]

    @property
    def identities_file(self) -> Path:
        return self.conf_dir / "s3-identities.json"

    def prepare(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": self.settings.s3_access_key,
                    "credentials": [
                        {
                            "accessKey": self.settings.s3_access_key,
                            "secretKey": self.settings.s3_secret_key.get_secret_value(),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        write_private(self.identities_file, json.dumps(identities))

    def command(self) -> list[str]:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        return [
            weed,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.identities_file}",
            # Every port derives from the S3 port, so two stacks (say, a test's) run side by
            # side.
            *self._weed_ports(),
            # Its master reports cluster statistics to seaweedfs.com unless told not to.
            "-master.telemetry=false",
            # Every bucket takes volumes of its own, and weed mini allows free disk / 1 GiB of
            # them: on a nearly full disk a new bucket got S3 500s ("no free volumes left").
            # Volumes grow as written, so a fixed count costs no space.
            f"-volume.max={S3_VOLUMES}",
            # Only S3 is part of tunelake's contract: keep the extra listeners off.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
        ]

    def healthy(self) -> bool:
        from tunelake_ops.stack.probes import s3_ready

        return s3_ready(self.settings)

    def bootstrap(self) -> None:
        from tunelake_ops.stack.probes import ensure_buckets

        ensure_buckets(self.settings, self.settings.buckets)


# PostgreSQL's usual data root on Debian (the postgres user's home): as root, clusters
# live here, where the postgres user can reach them whatever directory the checkout is in.
POSTGRES_CLUSTERS_ROOT = Path("/var/lib/postgresql/tunelake")
POSTGRES_SYSTEM_USER = "postgres"


@dataclass
class PostgresService(Service):
    """PostgreSQL, with its cluster where the user it runs as can reach it.

    As root the server runs as the ``postgres`` user, which may not enter the checkout (a
    home directory, a ``mktemp -d`` folder): the cluster then lives in a private directory
    of that user, ``/var/lib/postgresql/tunelake/<hash of the state dir>``, and the state
    dir records where (``data/postgres.location``). Otherwise it lives in the state dir.
    Logs and pid files stay in the state dir: we open them, the server only inherits them.
    """

    name: str = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM waits for every client to leave.
    stop_signal: signal.Signals = signal.SIGINT

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def run_as(self) -> str | None:
        # PostgreSQL refuses to run as root: drop to the Debian package's system user.
        return POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def location_file(self) -> Path:
        return self.settings.state_dir / "data" / "postgres.location"

    @property
    def data_dir(self) -> Path:
        recorded = self._recorded_cluster()
        if recorded is not None:
            return recorded
        in_state_dir = super().data_dir
        # A cluster made in the state dir before clusters moved out keeps its data.
        if self.run_as is None or (in_state_dir / "PG_VERSION").is_file():
            return in_state_dir
        state = str(self.settings.state_dir.resolve())
        return POSTGRES_CLUSTERS_ROOT / hashlib.sha256(state.encode()).hexdigest()[:16]

    def _recorded_cluster(self) -> Path | None:
        try:
            record = json.loads(self.location_file.read_text())
        except FileNotFoundError:
            return None
        # A copied checkout carries the record of the one it was copied from: not its own.
        if record.get("state_dir") != str(self.settings.state_dir.resolve()):
            return None
        return Path(record["cluster"])

    def paths_run_as_needs(self) -> tuple[Path, ...]:
        return (self.data_dir,)

    def _as_postgres_user(self, command: list[str]) -> list[str]:
        if self.run_as is None:
            return command
        return [
            "setpriv",
            f"--reuid={self.run_as}",
            f"--regid={self.run_as}",
            "--init-groups",
            *command,
        ]

    def prepare(self) -> None:
        data_dir = self.data_dir
        self.location_file.parent.mkdir(parents=True, exist_ok=True)
        self.location_file.write_text(
            json.dumps(
                {"state_dir": str(self.settings.state_dir.resolve()), "cluster": str(data_dir)}
            )
        )
        if (data_dir / "PG_VERSION").is_file():
            return
        bin_dir = install.postgres_bin_dir()
        user = self.run_as
        if user is not None and not POSTGRES_CLUSTERS_ROOT.is_dir():
            POSTGRES_CLUSTERS_ROOT.mkdir(mode=0o700, parents=True)
            shutil.chown(POSTGRES_CLUSTERS_ROOT, user, user)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(data_dir, user, user)
        # Next to the cluster (initdb wants its folder empty), where initdb's user reads it.
        pwfile = data_dir.with_name(f"{data_dir.name}.initdb.pw")
        write_private(pwfile, self.settings.postgres_password.get_secret_value(), owner=user)
        try:
            result = subprocess.run(
                self._as_postgres_user(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(data_dir),
                        "-U",
                        self.settings.postgres_user,
                        f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256",
                        "--auth-local=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                capture_output=True,
                text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise RuntimeError(f"initdb failed in {data_dir}:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return self._as_postgres_user(
            [
                str(install.postgres_bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={self.port}",
                # No Unix socket: it would need a directory the postgres user owns.
                "-c",
                "unix_socket_directories=",
                # Logical decoding for Debezium CDC.
                "-c",
                "wal_level=logical",
                "-c",
                "max_replication_slots=8",
                "-c",
                "max_wal_senders=8",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
            ]
        )

    def healthy(self) -> bool:
        from tunelake_ops.stack.probes import postgres_ready

        return postgres_ready(self.settings)

    def bootstrap(self) -> None:
        from ingestion.profiles import migrate
        from tunelake_ops.stack.probes import ensure_databases

        s = self.settings
        ensure_databases(s, (s.postgres_db, s.registry_db, s.airflow_db))
        migrate(s)


@dataclass
class RegistryService(Service):
    name: str = "registry"
    depends_on: tuple[str, ...] = ("postgres",)

    @property
    def port(self) -> int:
        return _url_port(self.settings.schema_registry_url)

    @property
    def listen_ports(self) -> tuple[int, ...]:
        return (self.port, self.port + 1)  # the management interface, see process_env

    def process_env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": (
                f"jdbc:postgresql://{s.postgres_host}:{s.postgres_port}/{s.registry_db}"
            ),
            "APICURIO_DATASOURCE_USERNAME": s.postgres_user,
            "APICURIO_DATASOURCE_PASSWORD": s.postgres_password.get_secret_value(),
            "QUARKUS_HTTP_HOST": "127.0.0.1",
            "QUARKUS_HTTP_PORT": str(self.port),
            # The management interface (health, metrics) would bind 0.0.0.0:9000.
            "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
            "QUARKUS_MANAGEMENT_PORT": str(self.port + 1),
        }

    def command(self) -> list[str]:
        dist = install.install_distribution(self.settings, "registry")
        return _java_command(
            install.find_java(install.REGISTRY_MIN_JAVA),
            "512m",
            "-jar",
            str(dist / "quarkus-run.jar"),
        )

    def healthy(self) -> bool:
        from tunelake_ops.stack.probes import registry_ready

        return registry_ready(self.settings)

    def bootstrap(self) -> None:
        from tunelake_ops.stack.probes import ensure_event_schemas

        ensure_event_schemas(self.settings)


# Jars the Connect worker already has: a plugin must not carry its own copies.
CONNECT_PROVIDED = {"connect-api", "connect-json", "kafka-clients", "slf4j-api"}


@dataclass
class ConnectService(Service):
    """Kafka Connect in distributed mode (its REST API on 127.0.0.1) running Debezium.

    Configs, offsets and statuses live in Kafka topics, as in production (Strimzi's
    KafkaConnect), so a restarted worker resumes the connector from its stored offset.
    Plugins: the Debezium PostgreSQL archive and Apicurio's Avro converter, each in its
    own folder under ``plugin.path`` (its own class loader).
    """

    name: str = "connect"
    depends_on: tuple[str, ...] = ("kafka", "registry", "postgres")

    @property
    def port(self) -> int:
        return _url_port(self.settings.kafka_connect_url)

    @property
    def properties_file(self) -> Path:
        return self.conf_dir / "worker.properties"

    def _plugin_dirs(self) -> list[Path]:
        converter = self.conf_dir / "plugins" / "apicurio-avro-converter"
        shutil.rmtree(converter, ignore_errors=True)
        converter.mkdir(parents=True)
        for jar in install.read_classpath(self.settings, "connect-avro"):
            if install.artifact_name(jar) not in CONNECT_PROVIDED:
                (converter / Path(jar).name).symlink_to(jar)
        return [install.install_distribution(self.settings, "debezium"), converter.parent]

    def prepare(self) -> None:
        s = self.settings
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        properties = {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "group.id": "tunelake-connect",
            "config.storage.topic": "_connect_configs",
            "offset.storage.topic": "_connect_offsets",
            "status.storage.topic": "_connect_status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            # Offsets are committed every second: after a crash Debezium resends at most
            # about a second of changes (dim_user drops them), and loses none.
            "offset.flush.interval.ms": "1000",
            # One worker: a task it lost in a crash is its again at once when it rejoins,
            # rather than after the default five minutes kept for another worker.
            "scheduled.rebalance.max.delay.ms": "0",
            "listeners": s.kafka_connect_url,
            "rest.advertised.host.name": "127.0.0.1",
            "plugin.path": ",".join(str(p) for p in self._plugin_dirs()),
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "config.providers": "env",
            "config.providers.env.class": (
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
            ),
        }
        self.properties_file.write_text(_properties(properties))

    def process_env(self) -> dict[str, str]:
        from ingestion.cdc import PASSWORD_ENV

        return {
            **os.environ,
            PASSWORD_ENV: self.settings.postgres_password.get_secret_value(),
        }

    def command(self) -> list[str]:
        loggers = {"org.apache.kafka": "WARN", "org.reflections": "ERROR", "io.debezium": "INFO"}
        return _java_command(
            install.find_java(17),
            "512m",
            f"-Dlog4j2.configurationFile={_write_log4j(self.conf_dir, loggers)}",
            "-cp",
            os.pathsep.join(install.read_classpath(self.settings, "connect")),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.properties_file),
        )

    def healthy(self) -> bool:
        from tunelake_ops.stack.probes import connect_ready

        return connect_ready(self.settings)

    def bootstrap(self) -> None:
        from ingestion.cdc import apply_connector, wait_running

        apply_connector(self.settings)
        wait_running(self.settings)


TRINO_CATALOGS = SOURCE_ROOT / "deploy" / "trino" / "catalog"


@dataclass
class TrinoService(Service):
    """Trino's coordinator (also its only worker) with the Delta catalog over the lake.

    Started straight on the JVM (what the distribution's launcher would exec), so the pid we
    keep is the server's. Its catalogs are the files compose and the chart use
    (``deploy/trino/catalog``); the Delta catalog's file metastore lives in the lakehouse
    bucket."""

    name: str = "trino"
    depends_on: tuple[str, ...] = ("s3",)
    start_timeout_s: float = 180.0

    @property
    def port(self) -> int:
        return _url_port(self.settings.trino_url)

    def process_env(self) -> dict[str, str]:
        # The catalog file (the one compose and the chart mount) reads these as ${ENV:...}.
        s = self.settings
        return {
            **os.environ,
            "TUNELAKE_S3_ENDPOINT_URL": s.s3_endpoint_url,
            "TUNELAKE_S3_REGION": s.s3_region,
            "TUNELAKE_S3_ACCESS_KEY": s.s3_access_key,
            "TUNELAKE_S3_SECRET_KEY": s.s3_secret_key.get_secret_value(),
        }

    def prepare(self) -> None:
        dist = install.trino_home(self.settings)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(self.port),
            "discovery.uri": f"http://127.0.0.1:{self.port}",
            "catalog.config-dir": str(TRINO_CATALOGS),
            "plugin.dir": str(dist / "plugin"),
            # Its request log defaults to var/log under the working directory.
            "http-server.log.path": str(self.data_dir / "var" / "log" / "http-request.log"),
            # One machine beside the rest of the stack: small, bounded query memory.
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "768MB",
        }
        (self.conf_dir / "config.properties").write_text(_properties(config))

    def command(self) -> list[str]:
        dist = install.trino_home(self.settings)
        return [
            *_java_command(
                install.find_java(install.TRINO_MIN_JAVA),
                "2G",
                "--add-modules=jdk.incubator.vector",
                "-XX:+ExitOnOutOfMemoryError",
                "-XX:+EnableDynamicAgentLoading",
                "-XX:ReservedCodeCacheSize=256M",
                "-Djdk.attach.allowAttachSelf=true",
                "-Dfile.encoding=UTF-8",
                f"-Dconfig={self.conf_dir / 'config.properties'}",
                "-Dnode.environment=tunelake",
                "-Dnode.id=tunelake-local",
                f"-Dnode.data-dir={self.data_dir}",
                "-cp",
                f"{dist / 'lib'}/*",
            ),
            "io.trino.server.TrinoServer",
        ]

    def healthy(self) -> bool:
        from tunelake_ops.trino import ready

        return ready(self.settings)

    def bootstrap(self) -> None:
        from tunelake_ops.trino import register_tables

        register_tables(self.settings)


def _airflow_health(settings: Settings) -> dict | None:
    import httpx

    url = f"http://127.0.0.1:{settings.airflow_port}/api/v2/monitor/health"
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


@dataclass
class AirflowService(Service):
    """One Airflow 3 component, with its metadata database in the stack's PostgreSQL."""

    component: str = ""
    start_timeout_s: float = 180.0

    @property
    def port(self) -> int | None:
        return self.settings.airflow_port if self.component == "api-server" else None

    def process_env(self) -> dict[str, str]:
        from tunelake_ops.airflow_env import airflow_env

        return {**os.environ, **airflow_env(self.settings), "AIRFLOW__API__WORKERS": "1"}

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "airflow"), self.component]

    def healthy(self) -> bool:
        health = _airflow_health(self.settings)
        if health is None:
            return False
        if self.component == "api-server":
            return health.get("metadatabase", {}).get("status") == "healthy"
        key = self.component.replace("-", "_")
        return (health.get(key) or {}).get("status") == "healthy"


@dataclass
class AirflowApiServer(AirflowService):
    name: str = "airflow-api-server"
    component: str = "api-server"
    depends_on: tuple[str, ...] = ("postgres",)

    def prepare(self) -> None:
        from tunelake_ops.airflow_env import write_passwords_file

        write_passwords_file(self.settings)
        # Idempotent, and quick once the schema is current.
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
            env=self.process_env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")


@dataclass
class AirflowScheduler(AirflowService):
    name: str = "airflow-scheduler"
    component: str = "scheduler"
    depends_on: tuple[str, ...] = ("airflow-api-server",)

    def command(self) -> list[str]:
        # Its log server would listen on 0.0.0.0:8793, one fixed port for every stack on
        # the machine; the API server reads task logs from the shared log folder instead.
        return [*super().command(), "--skip-serve-logs"]


@dataclass
class AirflowDagProcessor(AirflowService):
    name: str = "airflow-dag-processor"
    component: str = "dag-processor"
    depends_on: tuple[str, ...] = ("airflow-api-server",)


SERVICE_TYPES: tuple[type[Service], ...] = (
    PostgresService,
    S3Service,
    KafkaService,
    RegistryService,
    ConnectService,
    TrinoService,
    AirflowApiServer,
    AirflowScheduler,
    AirflowDagProcessor,
)


def all_services(settings: Settings) -> dict[str, Service]:
    services = [kind(settings) for kind in SERVICE_TYPES]
    return {svc.name: svc for svc in services}
