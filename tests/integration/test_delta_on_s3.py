from __future__ import annotations

import uuid

from pyspark.sql import functions as F

from tunelake.clients import s3_client


def test_delta_write_read_on_s3a(spark, s3):
    table = f"_tests/delta_{uuid.uuid4().hex[:8]}"
    path = s3.lakehouse_uri(table)
    rows = [
        ("u1", "t1", "2026-11-01", 1000),
        ("u2", "t1", "2026-11-01", 2000),
        ("u1", "t2", "2026-11-02", 500),
    ]
    df = spark.createDataFrame(rows, "user_id string, track_id string, day string, ms long")
    df.write.format("delta").partitionBy("day").save(path)
    spark.createDataFrame([("u3", "t3", "2026-11-02", 7)], df.schema).write.format("delta").mode(
        "append"
    ).save(path)

    back = spark.read.format("delta").load(path)
    assert sorted(
        tuple(r) for r in back.select("user_id", "track_id", "day", "ms").collect()
    ) == sorted([*rows, ("u3", "t3", "2026-11-02", 7)])
    per_day = {
        r.day: r.total for r in back.groupBy("day").agg(F.sum("ms").alias("total")).collect()
    }
    assert per_day == {"2026-11-01": 3000, "2026-11-02": 507}

    # The table really lives in the object store: a Delta log and day partitions.
    keys = [
        o["Key"]
        for o in s3_client(s3).list_objects_v2(Bucket=s3.lakehouse_bucket, Prefix=table)["Contents"]
    ]
    assert any(k.startswith(f"{table}/_delta_log/") for k in keys)
    assert any(k.startswith(f"{table}/day=2026-11-02/") for k in keys)
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 3
