"""The running stack listens only where it says it does.

tests/unit/test_ports.py keeps every declared port (``Service.listen_ports``) below the
kernel's ephemeral range; this checks the declarations against the real servers, so an
internal listener nobody declared (weed's gRPC ports, the scheduler's log server) fails.
"""

from __future__ import annotations

import pytest

from tunelake_ops.stack import ports, process
from tunelake_ops.stack.services import all_services


def test_every_listening_port_of_the_stack_is_declared(settings):
    undeclared = {}
    for name, svc in all_services(settings).items():
        proc = process.running_process(svc.pid_file)
        if proc is None:
            pytest.fail(f"{name} is not running: start the stack with `make up`", pytrace=False)
        extra = ports.listening_ports(proc.pid) - set(svc.listen_ports)
        if extra:
            undeclared[name] = sorted(extra)
    assert not undeclared, f"listening on ports their Service does not declare: {undeclared}"
