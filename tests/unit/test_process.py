from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from tunelake_ops.stack import process


def _sleeper(tmp_path, *, ignore_term: bool = False):
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    pid_file, log_file = tmp_path / "svc.pid", tmp_path / "svc.log"
    proc = process.spawn([sys.executable, "-c", code], pid_file=pid_file, log_file=log_file)
    assert process.wait_until(lambda: "ready" in log_file.read_text(), timeout_s=10)
    return proc, pid_file


def test_spawn_records_a_live_process_and_stop_ends_it(tmp_path):
    proc, pid_file = _sleeper(tmp_path)
    assert process.running_process(pid_file) == proc
    assert os.getpgid(proc.pid) == proc.pid  # leads its own process group

    stopped = process.stop(pid_file, timeout_s=5)

    assert stopped == proc
    assert not process.is_alive(proc)
    assert not pid_file.exists()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    proc, pid_file = _sleeper(tmp_path, ignore_term=True)

    process.stop(pid_file, stop_signal=signal.SIGTERM, timeout_s=0.5)

    assert not process.is_alive(proc)


def test_a_recycled_pid_is_not_ours(tmp_path):
    # A pid file naming a live pid with another start time: someone else's process.
    pid_file = tmp_path / "stale.pid"
    own_ticks = process._start_ticks(os.getpid())
    pid_file.write_text(
        json.dumps({"pid": os.getpid(), "start_ticks": own_ticks + 1, "command": ["x"]})
    )

    assert process.running_process(pid_file) is None
    assert process.stop(pid_file, timeout_s=0.1) is None  # and we are still alive
    assert not pid_file.exists()


def test_stop_without_pid_file_is_a_no_op(tmp_path):
    assert process.stop(tmp_path / "missing.pid") is None


def test_spawn_reports_a_command_that_cannot_start(tmp_path):
    with pytest.raises(FileNotFoundError):
        process.spawn(["/nonexistent/binary"], pid_file=tmp_path / "p", log_file=tmp_path / "l")


def test_wait_until_is_bounded():
    calls = []
    assert not process.wait_until(lambda: calls.append(1) and False, timeout_s=0.3, interval_s=0.05)
    assert len(calls) >= 2


def test_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, lines=3).splitlines() == ["line 97", "line 98", "line 99"]
    assert "no log" in process.tail(tmp_path / "missing.log")
