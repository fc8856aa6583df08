from __future__ import annotations

import os
import sys

import pytest

from tunelake.settings import Settings
from tunelake.stack import manager
from tunelake.stack.services import SERVICE_TYPES, all_services


def test_starting_a_service_starts_its_dependencies():
    services = all_services(Settings())
    assert [s.name for s in manager._ordered(services, ["registry"])] == ["postgres", "registry"]
    assert [s.name for s in manager._ordered(services, ["s3"])] == ["s3"]


def test_unknown_service_is_named():
    with pytest.raises(manager.StackError, match="bogus"):
        manager._ordered(all_services(Settings()), ["bogus"])


def test_dependencies_start_before_their_dependents():
    names = [kind.name for kind in SERVICE_TYPES]
    for kind in SERVICE_TYPES:
        for dep in kind.depends_on:
            assert names.index(dep) < names.index(kind.name)


def test_every_service_has_its_own_port(tmp_path):
    ports = [svc.port for svc in all_services(Settings(state_dir=tmp_path)).values()]
    assert len(set(ports)) == len(ports)


def test_describe_process_names_the_real_program():
    assert manager.describe_process(os.getpid()).startswith(os.path.basename(sys.executable))
