"""Spark settings from tunelake settings, without importing pyspark (DAG files use it)."""

from __future__ import annotations

from tunelake.settings import Settings


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """Every Spark setting tunelake relies on, as plain strings (pure: unit-tested)."""
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.autoBroadcastJoinThreshold": settings.spark_broadcast_join_threshold,
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint_url,
        "spark.hadoop.fs.s3a.endpoint.region": settings.s3_region,
        "spark.hadoop.fs.s3a.path.style.access": str(settings.s3_path_style).lower(),
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(settings.s3_uses_ssl).lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.access.key": settings.s3_access_key,
        "spark.hadoop.fs.s3a.secret.key": settings.s3_secret_key.get_secret_value(),
        # Delta's default S3 log store assumes one writer per table at a time: true for
        # tunelake, where each table has a single owning job.
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
        # Rebuilding a table's state from its log is a Spark job with 50 tasks by default:
        # far more than small local tables need, and paid on every micro-batch commit.
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_shuffle_partitions),
        # The driver keeps what its UI shows of finished work: by default 1,000 jobs,
        # stages and SQL queries with their plans and lineage graphs. An ALS search
        # is thousands of jobs, and one `make demo` retrain with those defaults grew the
        # driver's live heap by 25 MB a trial until a 2 GiB driver failed (bounded
        # here, the search's live heap stayed flat at ~380 MB: docs/performance.md).
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "10000",
        "spark.ui.dagGraph.retainedRootRDDs": "100",
        "spark.sql.ui.retainedExecutions": "50",
    }
    jars = settings.spark_jar_list()
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if settings.is_local_spark:
        conf |= {
            "spark.driver.memory": settings.spark_driver_memory,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.showConsoleProgress": "false",
            # Tungsten's page size is derived from the heap (8-64 MiB here), and every
            # broadcast hash join holds at least one page, however small its table:
            # an ALS search's joins kept 70 MB a trial of nearly empty pages alive.
            "spark.buffer.pageSize": "1m",
        }
    return conf | settings.spark_extra_conf
