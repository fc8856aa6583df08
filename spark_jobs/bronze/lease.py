"""One Bronze writer per topic: a PostgreSQL advisory lock per checkpoint, held for a run.

Every Bronze writer (the ``--follow`` job, the ``bronze_catchup`` DAG's ``--once``,
``tunelake pipeline run``) shares a topic's checkpoint and Delta table, and Delta's S3 log
store assumes a single writer. Whoever runs Bronze takes the topic's lease first: a
session-level ``pg_try_advisory_lock`` on a 64-bit key derived from the checkpoint path,
held on a dedicated connection for the life of the run. The lock goes when the connection
goes (a crashed or killed writer frees it; server-side TCP keepalives free it within about
a minute when a writer's host vanishes). A second writer retries for
``bronze_lease_wait_seconds``, then fails with ``BronzeLeaseHeldError`` naming the holder
(its ``application_name``: ``tunelake-bronze <host>:<pid>``).

Before each micro-batch the writer checks that its connection still holds the lock, so a
writer whose lease vanished stops before writing (``BronzeLeaseLostError``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable

from tunelake.clients import postgres_connect
from tunelake.settings import Settings

log = logging.getLogger(__name__)

APPLICATION_PREFIX = "tunelake-bronze"
# How often a waiting writer asks again.
POLL_SECONDS = 0.5


class BronzeLeaseError(RuntimeError):
    """Bronze cannot hold the single-writer lease of a topic."""


class BronzeLeaseHeldError(BronzeLeaseError):
    def __init__(self, topic: str, holder: str | None, waited: float) -> None:
        self.topic = topic
        self.holder = holder
        super().__init__(
            f"another Bronze writer holds topic {topic!r}"
            f" ({holder or 'holder unknown'}); waited {waited:.0f}s"
            " (TUNELAKE_BRONZE_LEASE_WAIT_SECONDS). Only one writer may run per topic:"
            " stop the other one, or let it finish"
        )


class BronzeLeaseLostError(BronzeLeaseError):
    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        super().__init__(f"lost the Bronze lease of topic {topic!r} ({reason}); batch not written")


def lease_key(checkpoint_path: str) -> int:
    """A stable signed 64-bit advisory-lock key for a checkpoint (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"tunelake-bronze:{checkpoint_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def application_name() -> str:
    return f"{APPLICATION_PREFIX} {socket.gethostname()}:{os.getpid()}"


# A bigint advisory lock shows in pg_locks as classid (high 32 bits), objid (low 32 bits)
# and objsubid 1.
_HOLDER = """
SELECT a.application_name, a.client_addr, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %(high)s AND l.objid = %(low)s
"""


def _key_parts(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}


class BronzeLease:
    """The leases of some topics, on one connection: ``with BronzeLease(...) as lease:``."""

    def __init__(self, settings: Settings, checkpoints: dict[str, str]) -> None:
        """``checkpoints`` maps each topic to its checkpoint path (the lock's identity)."""
        self._settings = settings
        self._keys = {topic: lease_key(path) for topic, path in checkpoints.items()}
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._conn = None

    def __enter__(self) -> BronzeLease:
        self._conn = self._connect()
        try:
            self.acquire(self._keys)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self):
        conn = postgres_connect(self._settings)
        conn.execute("SELECT set_config('application_name', %s, false)", (application_name(),))
        # Let the server notice a vanished holder (its lock would otherwise outlive it).
        for name, value in (("idle", 30), ("interval", 10), ("count", 3)):
            conn.execute(f"SET tcp_keepalives_{name} = {value}")
        return conn

    def _try(self, topic: str) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._keys[topic],))
        return bool(row.fetchone()[0])

    def holder(self, topic: str) -> str | None:
        """Who holds ``topic``'s lease, as PostgreSQL sees it (None if free or hidden)."""
        row = self._conn.execute(_HOLDER, _key_parts(self._keys[topic])).fetchone()
        if row is None:
            return None
        name, addr, since = row
        return f"{name or 'an unnamed session'} from {addr or 'local socket'}, since {since:%c}"

    def acquire(self, topics: Iterable[str]) -> None:
        """Take every topic's lease, retrying for the configured bound."""
        wait = self._settings.bronze_lease_wait_seconds
        began = time.monotonic()
        pending = [t for t in topics if t not in self._held]
        warned = set()
        with self._lock:
            while pending:
                for topic in list(pending):
                    if self._try(topic):
                        self._held.add(topic)
                        pending.remove(topic)
                if not pending:
                    break
                waited = time.monotonic() - began
                if waited >= wait:
                    topic = pending[0]
                    raise BronzeLeaseHeldError(topic, self.holder(topic), waited)
                for topic in set(pending) - warned:
                    log.warning(
                        "bronze %s: another writer holds the lease (%s); waiting up to %.0fs",
                        topic,
                        self.holder(topic),
                        wait,
                    )
                    warned.add(topic)
                time.sleep(POLL_SECONDS)
        log.info("bronze lease held for %s", ", ".join(sorted(self._held)))

    def check(self, topic: str) -> None:
        """Raise ``BronzeLeaseLostError`` unless this run still holds ``topic``'s lease."""
        if topic not in self._held:
            raise BronzeLeaseLostError(topic, "released")
        try:
            with self._lock:
                row = self._conn.execute(
                    _HOLDER + " AND l.pid = pg_backend_pid()", _key_parts(self._keys[topic])
                ).fetchone()
        except Exception as exc:  # any broken connection means the lock is gone
            raise BronzeLeaseLostError(topic, f"lease connection failed: {exc}") from exc
        if row is None:
            raise BronzeLeaseLostError(topic, "the lock is no longer held by this session")

    def release(self, topic: str) -> None:
        with self._lock:
            if topic in self._held and not self._conn.closed:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._keys[topic],))
            self._held.discard(topic)

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._held.clear()
