"""No listener of the stack, or of a stack a test starts, on a fixed port inside the kernel's
ephemeral range, where an outgoing connection may hold it at any moment.

The live half (every port the running stack's processes listen on is one they declare)
is tests/integration/test_stack_ports.py: together they cover the real listeners.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support import TEST_STACK_PORTS
from tunelake.settings import Settings
from tunelake_ops.stack import ports
from tunelake_ops.stack.services import all_services

STACKS = ["session", *TEST_STACK_PORTS]


def _settings(stack: str, state_dir) -> Settings:
    if stack == "session":
        return Settings(state_dir=state_dir)  # as the test session's stack is configured
    return Settings(_env_file=None, state_dir=state_dir, **TEST_STACK_PORTS[stack])


def _listeners(settings: Settings) -> dict[int, str]:
    """Every fixed port a process of that stack listens on -> who listens there."""
    found = {port: svc.name for svc in all_services(settings).values() for port in svc.listen_ports}
    found[settings.service_port] = "service"  # `tunelake serve`
    if settings.bronze_metrics_port:  # 0: the kernel's pick, which is never taken
        found[settings.bronze_metrics_port] = "bronze metrics"
    return found


def test_the_ephemeral_range_is_read_from_the_kernel():
    low, high = (int(p) for p in ports.EPHEMERAL_RANGE_FILE.read_text().split())
    assert (ports.ephemeral_range().start, ports.ephemeral_range().stop) == (low, high + 1)


@pytest.mark.parametrize("stack", STACKS)
def test_no_listener_port_lies_inside_the_ephemeral_range(stack, tmp_path):
    listeners = _listeners(_settings(stack, tmp_path))
    inside = {port: name for port, name in listeners.items() if ports.in_ephemeral_range(port)}
    assert not inside, (
        f"{stack}: listeners inside the ephemeral range {ports.ephemeral_range()}: {inside}"
    )


def _own_ports(stack: str, tmp_path) -> set[int]:
    """The ports of the services a stack starts: a test's stack starts only those it gives
    ports of their own, and uses the session's for the rest."""
    own = all_services(_settings(stack, tmp_path))
    if stack == "session":
        return set(_listeners(_settings(stack, tmp_path)))
    session = all_services(_settings("session", tmp_path))
    return {
        port
        for name, svc in own.items()
        if svc.listen_ports != session[name].listen_ports
        for port in svc.listen_ports
    }


def test_stacks_that_run_side_by_side_share_no_port(tmp_path):
    by_stack = {stack: _own_ports(stack, tmp_path) for stack in STACKS}
    assert all(by_stack.values())
    for (a, ports_a), (b, ports_b) in itertools.combinations(by_stack.items(), 2):
        assert not ports_a & ports_b, f"{a} and {b} both listen on {sorted(ports_a & ports_b)}"


def test_a_picked_free_port_lies_below_the_ephemeral_range():
    picks = {ports.free_port() for _ in range(20)}
    assert all(p < ports.ephemeral_range().start for p in picks), picks
    assert len(picks) > 1  # picked at random, so concurrent pickers rarely meet
