"""`up`, `down` and `status` for the local stack.

Services start in parallel (each waits only for its own dependencies) and are polled for
readiness with a bound; a service that fails is named together with the tail of its log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tunelake.settings import Settings
from tunelake_ops.stack import files, install, ports, process
from tunelake_ops.stack.process import describe_process
from tunelake_ops.stack.services import Service, all_services

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]


class StackError(RuntimeError):
    def __init__(self, service: str, message: str, log_tail: str = "") -> None:
        self.service = service
        self.log_tail = log_tail
        super().__init__(f"{service}: {message}")


@dataclass(frozen=True)
class ServiceOutcome:
    service: str
    action: str  # "started" | "running"
    seconds: float


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    pid: int | None
    port: int | None
    health: str  # "healthy" | "unhealthy" | "stopped"
    process: str


def require_free_ports(svc: Service) -> None:
    """Fail before starting when a port the service needs is held, naming the holder."""
    for port in svc.listen_ports:
        holders = ports.listening_pids(port)
        if holders or ports.accepting("127.0.0.1", port):
            named = ", ".join(f"pid {pid} ({describe_process(pid)})" for pid in sorted(holders))
            raise StackError(
                svc.name,
                f"port {port} is taken by a process tunelake did not start: "
                f"{named or 'a process this user cannot see'}",
            )
        if ports.in_ephemeral_range(port):
            log.warning(
                "%s listens on port %d, inside the kernel's ephemeral range %d-%d: any "
                "outgoing connection may hold it, and then the start fails at random",
                svc.name,
                port,
                ports.ephemeral_range().start,
                ports.ephemeral_range().stop - 1,
            )


def _ordered(services: dict[str, Service], names: Iterable[str] | None) -> list[Service]:
    wanted = set(names or services)
    unknown = wanted - set(services)
    if unknown:
        raise StackError(", ".join(sorted(unknown)), f"unknown service; known: {sorted(services)}")
    # Starting a service starts what it depends on.
    pending = list(wanted)
    while pending:
        for dep in services[pending.pop()].depends_on:
            if dep not in wanted:
                wanted.add(dep)
                pending.append(dep)
    return [svc for name, svc in services.items() if name in wanted]


def require_reachable(svc: Service) -> None:
    """Fail before starting when the user a service runs as cannot reach its files, naming
    the directory in the way (rather than the server's own error, deep in its log)."""
    if svc.run_as is None:
        return
    uid, gids = files.user_ids(svc.run_as)
    for path in svc.paths_run_as_needs():
        blocked = files.first_unreachable(path, uid, gids)
        if blocked is not None:
            raise StackError(
                svc.name,
                f"runs as user {svc.run_as!r}, which cannot reach {path}: {blocked} "
                f"({files.describe_owner(blocked)}) does not let it in. Let it in "
                f"(chmod o+x {blocked}) or use a state dir it can reach (TUNELAKE_STATE_DIR)",
            )


def _start_one(svc: Service, progress: Progress) -> ServiceOutcome:
    began = time.monotonic()
    if process.running_process(svc.pid_file) is None:
        require_free_ports(svc)
        require_reachable(svc)
        progress(svc.name, "preparing")
        svc.prepare()
        progress(svc.name, f"starting (log: {svc.log_file})")
        proc = process.spawn(
            svc.command(), pid_file=svc.pid_file, log_file=svc.log_file, env=svc.process_env()
        )
        action = "started"
    else:
        proc = process.running_process(svc.pid_file)
        action = "running"

    def ready() -> bool:
        if not process.is_alive(proc):
            raise StackError(svc.name, "exited while starting", process.tail(svc.log_file))
        return svc.healthy()

    if not process.wait_until(ready, timeout_s=svc.start_timeout_s):
        raise StackError(
            svc.name,
            f"not healthy after {svc.start_timeout_s:.0f}s (pid {proc.pid})",
            process.tail(svc.log_file),
        )
    svc.bootstrap()
    outcome = ServiceOutcome(svc.name, action, time.monotonic() - began)
    progress(
        svc.name,
        f"{'healthy' if action == 'started' else 'already running'} ({outcome.seconds:.1f}s)",
    )
    return outcome


def up(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress = lambda s, m: None
) -> list[ServiceOutcome]:
    """Install what is missing, then start every (or the named) service and its dependencies."""
    progress("install", "checking Java, Maven jars, registry distribution, PostgreSQL")
    try:
        install.install_all(settings)
    except install.InstallError as exc:
        raise StackError("install", str(exc)) from exc
    services = _ordered(all_services(settings), names)
    done = {svc.name: threading.Event() for svc in services}
    outcomes: dict[str, ServiceOutcome] = {}
    errors: list[StackError] = []

    def run(svc: Service) -> None:
        try:
            for dep in svc.depends_on:
                done[dep].wait()
                if dep not in outcomes:
                    raise StackError(svc.name, f"not started: dependency {dep} failed")
            outcomes[svc.name] = _start_one(svc, progress)
        except StackError as exc:
            errors.append(exc)
        except Exception as exc:  # keep the service name on unexpected failures too
            errors.append(StackError(svc.name, repr(exc), process.tail(svc.log_file)))
        finally:
            done[svc.name].set()

    threads = [threading.Thread(target=run, args=(svc,), name=svc.name) for svc in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        # The first failure in dependency order is the cause; the others follow from it.
        order = [svc.name for svc in services]
        raise min(errors, key=lambda e: order.index(e.service) if e.service in order else -1)
    return [outcomes[svc.name] for svc in services]


def down(settings: Settings, progress: Progress = lambda s, m: None) -> list[str]:
    """Stop every service `up` started (dependents first); returns the names stopped."""
    services = list(all_services(settings).values())
    stopped: list[str] = []
    for svc in reversed(services):
        proc = process.stop(svc.pid_file, stop_signal=svc.stop_signal, timeout_s=svc.stop_timeout_s)
        if proc is not None:
            stopped.append(svc.name)
            progress(svc.name, f"stopped (pid {proc.pid})")
    return stopped


def status(settings: Settings) -> list[ServiceStatus]:
    rows = []
    for svc in all_services(settings).values():
        proc = process.running_process(svc.pid_file)
        if proc is None:
            rows.append(ServiceStatus(svc.name, None, svc.port, "stopped", "-"))
            continue
        health = "healthy" if svc.healthy() else "unhealthy"
        rows.append(ServiceStatus(svc.name, proc.pid, svc.port, health, describe_process(proc.pid)))
    return rows


def log_path(settings: Settings, name: str) -> Path:
    services = all_services(settings)
    if name not in services:
        raise StackError(name, f"unknown service; known: {sorted(services)}")
    return services[name].log_file
