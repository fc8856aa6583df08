from __future__ import annotations

from pyspark.sql import functions as F

from spark_jobs.common.conf import spark_conf
from tunelake.settings import Settings


def test_local_conf_wires_delta_s3a_and_the_resolved_jars(settings):
    conf = spark_conf(settings, "job")
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == settings.s3_endpoint_url
    assert conf["spark.sql.session.timeZone"] == "UTC"
    jars = conf["spark.jars"].split(",")
    assert any("delta-spark_4.1_2.13" in j for j in jars)
    assert any("hadoop-aws" in j for j in jars)
    assert not any("spark.jars.packages" in k for k in conf)  # no resolution at job start


def test_cluster_conf_comes_from_settings_alone():
    s = Settings(
        _env_file=None,
        spark_master="spark://spark-master:7077",
        s3_endpoint_url="https://s3.eu-west-1.amazonaws.com",
        s3_path_style=False,
        s3_access_key="AKIA",
        s3_secret_key="s3cr3t",
    )
    conf = spark_conf(s, "job")
    assert conf["spark.master"] == "spark://spark-master:7077"
    assert "spark.jars" not in conf  # baked into the cluster image
    assert "spark.driver.host" not in conf
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "false"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "s3cr3t"


def test_explicit_jars_setting_wins():
    s = Settings(_env_file=None, spark_jars="/opt/a.jar,/opt/b.jar")
    assert spark_conf(s, "job")["spark.jars"] == "/opt/a.jar,/opt/b.jar"


def test_session_writes_and_reads_a_local_delta_table(spark, tmp_path):
    path = str(tmp_path / "plays")
    rows = [("u1", "t1", 1000), ("u1", "t2", 2000), ("u2", "t1", 500)]
    spark.createDataFrame(rows, "user_id string, track_id string, ms_played long").write.format(
        "delta"
    ).save(path)
    spark.createDataFrame(
        [("u3", "t3", 10)], "user_id string, track_id string, ms_played long"
    ).write.format("delta").mode("append").save(path)

    back = spark.read.format("delta").load(path)
    assert back.count() == 4
    assert back.agg(F.sum("ms_played")).first()[0] == 3510
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("operation").collect()
    assert [r.operation for r in history] == ["WRITE", "WRITE"]


def test_session_runs_in_utc(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_extra_conf_from_the_environment_is_applied_last(monkeypatch):
    monkeypatch.setenv(
        "TUNELAKE_SPARK_EXTRA_CONF",
        '{"spark.executor.memory": "3g", "spark.sql.shuffle.partitions": "64"}',
    )
    conf = spark_conf(Settings(_env_file=None), "job")
    assert conf["spark.executor.memory"] == "3g"
    assert conf["spark.sql.shuffle.partitions"] == "64"


def test_the_local_driver_allocates_small_memory_pages(spark):
    # Every broadcast hash join holds at least one page while its plan is reachable; at
    # the size Spark derives from a 2 GiB driver (8-64 MiB) `make demo`'s ALS search kept
    # hundreds of MB of them alive and failed ("Not enough memory to build and broadcast
    # the table"). The running driver's memory manager, not just the conf we hand it:
    memory_manager = spark.sparkContext._jvm.org.apache.spark.SparkEnv.get().memoryManager()
    assert memory_manager.pageSizeBytes() == 2**20
