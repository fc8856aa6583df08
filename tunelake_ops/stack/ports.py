"""Listening ports of the local stack: who holds one, and the range the kernel hands out.

Linux gives every outgoing connection a local port from ``ip_local_port_range``
(32768-60999 by default). A server told to listen on a fixed port inside that range fails
at random with "Address already in use" whenever a client socket happens to hold the port,
so the stack's ports, and those of every throwaway stack a test starts, stay below it.
"""

from __future__ import annotations

import random
import socket
from functools import cache
from pathlib import Path

import psutil

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default, for a kernel that does not say.
DEFAULT_EPHEMERAL = range(32768, 61000)
# Test-only listeners pick from this many ports just below the ephemeral range.
PICK_BAND = 2000


@cache
def ephemeral_range() -> range:
    """The ports the kernel picks from for outgoing connections (and for port 0)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return range(low, high + 1)


def in_ephemeral_range(port: int) -> bool:
    return port in ephemeral_range()


def listening_pids(port: int) -> set[int]:
    """The processes with a TCP socket listening on ``port`` (any address)."""
    return {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if conn.pid is not None
    }


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process and all its descendants listen on."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    ports = set()
    for proc in family:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ports |= {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, picked below the ephemeral range.

    Binding port 0 would hand out an ephemeral port: free now, but a server started on it a
    moment later races every outgoing connection for it. A pick below the range only races
    other explicit picks, and the random choice over a band makes that unlikely.
    """
    top = ephemeral_range().start
    candidates = list(range(max(1024, top - PICK_BAND), top))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates[0]}-{top - 1}")


def host_port(address: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets or not) as (host, port)."""
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]"), int(port)


def accepting(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
