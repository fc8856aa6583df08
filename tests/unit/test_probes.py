from __future__ import annotations

import logging

from tunelake.settings import Settings
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.probes import kafka_cluster_ready


def test_a_broker_not_listening_yet_is_not_ready_and_logs_no_errors(caplog):
    # `tunelake up` polls this while the broker starts; a client's refused bootstraps
    # once filled its output with ERROR lines.
    settings = Settings(_env_file=None, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with caplog.at_level(logging.DEBUG):
        assert not kafka_cluster_ready(settings, timeout_ms=500)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
