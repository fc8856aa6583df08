"""Log configuration for every process that starts platform code (CLI, jobs, services)."""

from __future__ import annotations

import logging
import sys

# kafka-python, httpx, py4j and Great Expectations narrate every step at INFO.
NOISY_LOGGERS = ("kafka", "httpx", "py4j", "great_expectations")


def configure_logging(level: int = logging.INFO) -> None:
    """Our INFO lines to stderr (spark-submit, Airflow and Kubernetes keep stderr)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
