"""Quality results as a table: what ``dq.reports.store`` keeps reaches Trino, and the
dashboard's pass-rate panel computes its rates from it (no Spark, no Great Expectations:
the reports are made by hand as ``dq.gate.validate`` makes them)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dashboards.build import Lake, expand_macros, panel_queries
from dq.reports import RESULTS_TABLE, Check, Failure, QualityReport, store, stored
from tests.support import throwaway_lake
from tunelake.clients import delta_table
from tunelake_ops.trino import query, register_tables, schema_of

NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
ROW_COUNT = "expect_table_row_count_to_be_between"


@pytest.fixture
def lake(kafka, s3, trino):
    with pytest.MonkeyPatch.context() as env, throwaway_lake(env, "it_quality") as settings:
        yield settings


def report(table: str, run_id: str, checks: list[Check], failures=()) -> QualityReport:
    return QualityReport(
        table=table,
        run_id=run_id,
        rows=100,
        evaluated=len(checks),
        failures=list(failures),
        checks=checks,
    )


def test_stored_results_are_rows_trino_reads_and_the_pass_rate_panel_counts(lake):
    bronze = report(
        "bronze_listens",
        "run-1",
        [
            Check(NOT_NULL, {"column": "user_id"}, "critical", True),
            Check(BETWEEN, {"column": "ms_played", "min_value": 0}, "critical", False),
            Check(NOT_NULL, {"column": "track_id"}, "critical", True),
            Check(NOT_NULL, {"column": "event_id"}, "critical", True),
        ],
        [Failure(BETWEEN, {"min_value": 0, "column": "ms_played"}, "critical", 7, [-500])],
    )
    silver = report(
        "silver_listens",
        "run-1",
        [
            Check(NOT_NULL, {"column": "user_id"}, "critical", True),
            Check(ROW_COUNT, {"min_value": 1, "max_value": 50}, "warning", False),
        ],
        [Failure(ROW_COUNT, {"min_value": 1, "max_value": 50}, "warning", None, [])],
    )

    store(lake, [bronze], "bronze")
    store(lake, [silver], "silver")

    # The JSON reports keep their checks too.
    assert stored(lake, "run-1")["bronze"][0].checks == bronze.checks
    audit = schema_of(lake, "audit")
    assert f"{audit}.{RESULTS_TABLE}" in register_tables(lake)
    rows = query(
        lake,
        "SELECT stage, table_name, expectation, json_extract_scalar(kwargs, '$.column'), "
        "severity, success, unexpected_count, rows, check_date "
        f"FROM delta.{audit}.{RESULTS_TABLE} ORDER BY stage, table_name, kwargs",
    ).rows
    today = datetime.now(UTC).date().isoformat()
    assert rows == [
        ["bronze", "bronze_listens", NOT_NULL, "event_id", "critical", True, None, 100, today],
        ["bronze", "bronze_listens", BETWEEN, "ms_played", "critical", False, 7, 100, today],
        ["bronze", "bronze_listens", NOT_NULL, "track_id", "critical", True, None, 100, today],
        ["bronze", "bronze_listens", NOT_NULL, "user_id", "critical", True, None, 100, today],
        ["silver", "silver_listens", NOT_NULL, "user_id", "critical", True, None, 100, today],
        ["silver", "silver_listens", ROW_COUNT, None, "warning", False, None, 100, today],
    ]

    # The panel, as Grafana's Trino plugin runs it over the last week.
    sql = panel_queries(Lake.of(lake))["Data-quality pass rate"]
    end = date.fromisoformat(today)
    result = query(lake, expand_macros(sql, end - timedelta(days=7), end))
    assert result.columns == [
        "day",
        "stage",
        "table_name",
        "expectations",
        "failed",
        "critical_failed",
        "pass_rate",
    ]
    assert result.types == ["date", "varchar", "varchar", "bigint", "bigint", "bigint", "double"]
    assert result.rows == [
        [today, "bronze", "bronze_listens", 4, 1, 1, 0.75],
        [today, "silver", "silver_listens", 2, 1, 0, 0.5],
    ]
    # Appended, never rewritten: a second validation of the run adds its rows.
    store(lake, [silver], "silver")
    assert delta_table(lake, lake.audit_path(RESULTS_TABLE)).to_pyarrow_table().num_rows == 8
