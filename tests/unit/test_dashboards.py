"""Dashboards as code: the committed JSON is what the code builds, every dashboard survives a
round trip through grafana-foundation-sdk's model, and every panel reads the provisioned
Trino datasource in the lake it was built for. (Each panel's SQL runs on Trino in
tests/e2e/test_demo.py, over the demo's lake.)"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.build import DASHBOARDS_DIR, Lake, build, expand_macros, panel_queries, render
from dashboards.trino_query import TrinoQuery
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.settings import SOURCE_ROOT

pytestmark = pytest.mark.unit

COMMITTED = sorted(DASHBOARDS_DIR.glob("*.json"))
PROVISIONED = SOURCE_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "trino.yaml"


def targets(dashboard: dict) -> list[dict]:
    return [t for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_committed_dashboards_are_what_the_code_builds() -> None:
    built = {name: render(d) for name, d in build(Lake.default()).items()}
    assert sorted(p.name for p in COMMITTED) == sorted(built), "run: python -m dashboards"
    for path in COMMITTED:
        assert path.read_text() == built[path.name], f"{path.name}: run python -m dashboards"


def test_the_committed_dashboards_name_the_default_lake_whatever_the_environment(
    monkeypatch,
) -> None:
    monkeypatch.setenv("TUNELAKE_TRINO_SCHEMA_PREFIX", "elsewhere_")
    monkeypatch.setenv("TUNELAKE_TOPIC_LISTENING_HISTORY", "other_listens")
    lake = Lake.default()
    assert lake.schema_prefix == ""
    assert "user_listening_history" in lake.bronze_tables


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_dashboard_round_trips_through_the_sdk_model(path: Path) -> None:
    committed = json.loads(path.read_text())
    model = Dashboard.from_json(committed)
    assert json.loads(render(model)) == committed
    # Targets decode as Trino queries, not the SDK's untyped fallback.
    decoded = [t for panel in model.panels for t in panel.targets]
    assert decoded and all(isinstance(t, TrinoQuery) for t in decoded)
    assert [t.raw_sql for t in decoded] == [t["rawSQL"] for t in targets(committed)]


def test_every_panel_reads_the_provisioned_trino_datasource() -> None:
    (provisioned,) = yaml.safe_load(PROVISIONED.read_text())["datasources"]
    expected = {"type": provisioned["type"], "uid": provisioned["uid"]}
    for path in COMMITTED:
        dashboard = json.loads(path.read_text())
        assert dashboard["panels"], path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"] == expected, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]


def test_panels_read_only_the_schemas_of_the_lake_they_were_built_for() -> None:
    lake = Lake("lakecat", "t_1234_", ("events_x", "listens_x", "feedback_x"))
    sql = "\n".join(t.raw_sql for d in build(lake).values() for p in d.panels for t in p.targets)
    schemas = set(re.findall(r'\b(\w+)\."(\w+)"\."', sql))
    assert schemas == {
        ("lakecat", "t_1234_bronze"),
        ("lakecat", "t_1234_silver"),
        ("lakecat", "t_1234_audit"),
    }
    # No table is named without its catalog and schema.
    assert not re.search(r"\bFROM\s+(?!lakecat\.)", sql)


def test_the_freshness_panel_covers_every_bronze_and_silver_table() -> None:
    lake = Lake("delta", "", ("events_x", "listens_x", "feedback_x"))
    sql = panel_queries(lake)["Freshness and row counts"]
    covered = set(re.findall(r"SELECT '(\w+)' AS layer, '(\w+)' AS table_name", sql))
    assert covered == {
        *(("bronze", t) for t in lake.bronze_tables),
        *(("silver", t) for t in SILVER_TABLES),
    }
    for layer, name in covered:
        assert f'delta."{layer}"."{name}$history"' in sql


def test_panel_queries_are_every_panel_s_sql_by_unique_title() -> None:
    lake = Lake.default()
    panels = [p for d in build(lake).values() for p in d.panels]
    queries = panel_queries(lake)
    assert len(queries) == len(panels)
    assert all(len(p.targets) == 1 for p in panels)
    assert [queries[p.title] for p in panels] == [p.targets[0].raw_sql for p in panels]


def test_date_filters_expand_as_the_trino_plugin_does() -> None:
    sql = "SELECT 1 FROM t WHERE $__dateFilter(play_date) AND $__dateFilter( d )"
    assert expand_macros(sql, date(2026, 10, 1), date(2026, 10, 30)) == (
        "SELECT 1 FROM t WHERE play_date BETWEEN date '2026-10-01' AND date '2026-10-30' "
        "AND d BETWEEN date '2026-10-01' AND date '2026-10-30'"
    )
    with pytest.raises(ValueError, match="timeFilter"):
        expand_macros("WHERE $__timeFilter(played_at)", date(2026, 1, 1), date(2026, 1, 2))


def test_the_pass_rate_panel_reads_the_quality_results_table_per_day_and_table() -> None:
    lake = Lake("delta", "", ("events_x", "listens_x", "feedback_x"))
    sql = panel_queries(lake)["Data-quality pass rate"]
    assert 'FROM delta."audit"."quality_results"' in sql
    assert "$__dateFilter(check_date)" in sql
    assert "GROUP BY check_date, stage, table_name" in sql
