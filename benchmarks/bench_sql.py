"""The dashboards' panel queries on Trino, beside DuckDB reading the same Delta tables.

    python -m benchmarks.bench_sql [--events 10000000] [--runs 3]

1. Bronze-shaped Delta tables with ``--events`` listens over 30 days (``bench_silver``'s
   generator) in a bucket of its own, and Silver built from them by the real job (one
   30-day run: validate, stage, validate, publish).
2. The lake's tables registered in Trino, in schemas of their own.
3. Every panel's SQL (``dashboards.build``, time range: the 30 days): a warm-up, then
   ``--runs`` timed runs on Trino; DuckDB runs the same SQL over each Silver table's current
   files (delta-rs's dataset of the table, read through Arrow). Prints per-panel medians and
   the ratio. Targets: every panel under 2 s on Trino; median ratio to DuckDB <= 3x.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta

import duckdb

from benchmarks.bench_silver import DAY0, lake, write_bronze
from dashboards.build import Lake, expand_macros, panel_queries
from dq.reports import RESULTS_TABLE
from ingestion.streams import Stream
from spark_jobs.bronze.ingest import BronzeTarget, ensure_tables
from spark_jobs.common.session import build_spark
from spark_jobs.silver import build
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.clients import delta_table
from tunelake.settings import get_settings
from tunelake_ops.stack.probes import drop_bucket
from tunelake_ops.trino import forget_schemas, query, register_tables

DAYS = 30
# Trino's SQL the DuckDB side spells differently.
TO_DUCKDB = ((re.compile(r"timestamp\(3\)", re.IGNORECASE), "TIMESTAMP_MS"),)


def timed(run: Callable[[], object], runs: int) -> float:
    """The median seconds of ``runs`` runs after one warm-up."""
    run()
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def duckdb_over(settings, bench_lake: Lake) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A DuckDB connection with every Silver table (and the quality results) as a view over
    its Delta dataset, and the Trino table name -> DuckDB view name map."""
    con = duckdb.connect()
    tables = [
        (bench_lake.silver(name), f"silver_{name}", table.path(settings))
        for name, table in SILVER_TABLES.items()
    ]
    # The quality pass-rate panel's table (written by the Silver build's validations).
    tables.append(
        (
            bench_lake.audit(RESULTS_TABLE),
            "audit_quality_results",
            settings.audit_path(RESULTS_TABLE),
        )
    )
    names = {}
    for trino_name, view, path in tables:
        con.register(view, delta_table(settings, path).to_pyarrow_dataset())
        names[trino_name] = view
    return con, names


def to_duckdb(sql: str, names: dict[str, str]) -> str | None:
    """The panel's SQL for DuckDB, or None when it reads what only Trino has (``$history``)."""
    if "$history" in sql:
        return None
    for trino_name, view in names.items():
        sql = sql.replace(trino_name, view)
    for pattern, replacement in TO_DUCKDB:
        sql = pattern.sub(replacement, sql)
    return sql


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="listens over 30 days")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per query and engine")
    args = parser.parse_args()
    base = get_settings()
    settings = lake(base, "sql").model_copy(
        update={"trino_schema_prefix": f"bench_sql_{uuid.uuid4().hex[:6]}_"}
    )
    spark = build_spark(settings, "bench-sql")
    try:
        began = time.perf_counter()
        write_bronze(spark, settings, args.events // DAYS, first_day=0, days=DAYS)
        last = DAY0 + timedelta(days=DAYS - 1)
        build.build(spark, settings, build.SilverRun.for_dates(DAY0, last))
        # Every Bronze table the freshness panel names, as a Bronze run leaves them (the
        # synthetic Bronze has the event streams only; user_profiles stays empty).
        for stream in Stream:
            ensure_tables(spark, BronzeTarget.of(settings, stream))
        print(f"lake: {args.events:,} listens, Silver built in {time.perf_counter() - began:.0f}s")
        register_tables(settings)
        bench_lake = Lake.of(settings)
        con, names = duckdb_over(settings, bench_lake)
        ratios, slowest = [], 0.0
        for title, sql in panel_queries(bench_lake).items():
            # Through today: the quality results are dated when the build validated.
            sql = expand_macros(sql, DAY0, max(last, date.today()))
            trino_s = timed(lambda sql=sql: query(settings, sql), args.runs)
            slowest = max(slowest, trino_s)
            duck_sql = to_duckdb(sql, names)
            if duck_sql is None:
                print(f"{title}: trino {trino_s:.2f}s (Trino-only metadata: no DuckDB twin)")
                continue
            rows_trino = query(settings, sql).rows
            rows_duck = con.sql(duck_sql).fetchall()
            if len(rows_trino) != len(rows_duck):
                raise SystemExit(f"{title}: trino {len(rows_trino)} rows, duckdb {len(rows_duck)}")
            duck_s = timed(lambda duck_sql=duck_sql: con.sql(duck_sql).fetchall(), args.runs)
            ratios.append(trino_s / duck_s)
            print(
                f"{title}: trino {trino_s:.2f}s, duckdb {duck_s:.2f}s, ratio {ratios[-1]:.2f}",
                flush=True,
            )
        print(
            f"slowest panel on trino {slowest:.2f}s (target < 2); median ratio "
            f"{statistics.median(ratios):.2f} (target <= 3)"
        )
    finally:
        forget_schemas(settings)
        drop_bucket(settings, settings.lakehouse_bucket)


if __name__ == "__main__":
    main()
