"""Start, track and stop the local stack's processes by pid file.

A pid file records the pid and the process start time read from ``/proc``: a pid that the
kernel recycled for someone else's process never matches, so ``down`` stops exactly what
``up`` started and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedProcess:
    pid: int
    start_ticks: int
    command: tuple[str, ...]


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields_after_comm = stat.rsplit(")", 1)[1].split()
    state = fields_after_comm[0]
    if state in ("Z", "X"):
        return None
    return int(fields_after_comm[19])


def is_alive(proc: TrackedProcess) -> bool:
    return _start_ticks(proc.pid) == proc.start_ticks


def read_pid_file(path: Path) -> TrackedProcess | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError) as exc:
        log.warning("ignoring unreadable pid file %s: %s", path, exc)
        return None
    return TrackedProcess(int(data["pid"]), int(data["start_ticks"]), tuple(data["command"]))


def running_process(pid_file: Path) -> TrackedProcess | None:
    """The process a pid file names, if it is still that same process."""
    proc = read_pid_file(pid_file)
    if proc is not None and is_alive(proc):
        return proc
    return None


def spawn(
    command: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> TrackedProcess:
    """Start ``command`` detached in its own session, logging to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    ticks = _start_ticks(popen.pid)
    if ticks is None:
        popen.wait(timeout=5)
        raise RuntimeError(
            f"{command[0]} exited at once with code {popen.returncode}; see {log_file}"
        )
    proc = TrackedProcess(popen.pid, ticks, tuple(command))
    pid_file.write_text(
        json.dumps({"pid": proc.pid, "start_ticks": proc.start_ticks, "command": command})
    )
    return proc


def _signal_group(proc: TrackedProcess, sig: signal.Signals) -> None:
    # Each service leads its own session (start_new_session), so its process group holds
    # exactly the processes it started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop(
    pid_file: Path,
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    timeout_s: float = 20.0,
) -> TrackedProcess | None:
    """Stop the process a pid file names; SIGKILL it if it outlives ``timeout_s``.

    Returns the stopped process, or None if nothing of ours was running.
    """
    proc = read_pid_file(pid_file)
    if proc is None or not is_alive(proc):
        pid_file.unlink(missing_ok=True)
        return None
    _signal_group(proc, stop_signal)
    if not wait_until(lambda: not is_alive(proc), timeout_s=timeout_s):
        log.warning(
            "pid %s ignored %s for %.0fs; sending SIGKILL", proc.pid, stop_signal.name, timeout_s
        )
        _signal_group(proc, signal.SIGKILL)
        if not wait_until(lambda: not is_alive(proc), timeout_s=10):
            raise RuntimeError(f"pid {proc.pid} survived SIGKILL")
    pid_file.unlink(missing_ok=True)
    return proc


def wait_until(condition, *, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` passes; back off up to 2 s."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval_s, remaining))
        interval_s = min(interval_s * 1.5, 2.0)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def describe_process(pid: int) -> str:
    """What the pid really runs: the Java main class/jar, or the executable and verb."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return "?"
    argv = [a for a in argv if a]
    exe = Path(argv[0]).name if argv else "?"
    if exe == "java":
        main = next(
            (
                a
                for i, a in enumerate(argv[1:], 1)
                if not a.startswith("-") and argv[i - 1] not in ("-cp", "-classpath")
            ),
            "?",
        )
        return f"java {Path(main).name}"
    if exe.startswith("python") and len(argv) > 1:  # name the script or module instead
        if argv[1] == "-m" and len(argv) > 2:
            argv = argv[2:]
        elif not argv[1].startswith("-"):
            argv = argv[1:]
        exe = Path(argv[0]).name
    verb = argv[1:2] if len(argv) > 1 and not argv[1].startswith("-") else []
    return " ".join([exe, *verb])
