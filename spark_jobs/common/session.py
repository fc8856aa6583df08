"""The one SparkSession factory: Delta, s3a and the Kafka/Avro connectors, from settings.

Local mode loads the jar set that ``tunelake up`` resolved with Maven (``spark.jars``), so
Spark never resolves packages at job start; on a cluster (``TUNELAKE_SPARK_MASTER`` not
``local[...]``) the jars are part of the image and only the master changes.
"""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

from spark_jobs.common.conf import spark_conf
from tunelake.settings import Settings


def build_spark(settings: Settings, app_name: str) -> SparkSession:
    """A SparkSession for ``app_name``; reuses the running one in the same process."""
    if settings.is_local_spark:
        # Spark otherwise binds to whatever interface the hostname resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in spark_conf(settings, app_name).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
