"""tunelake's Grafana dashboards, built with grafana-foundation-sdk; every panel is SQL on
the Trino datasource over the lake's Bronze and Silver tables.

- ``tunelake-listening``: top tracks, plays vs recommendations per day, play-through rate of
  recommendations per model version (Silver aggregates, filtered by the dashboard's time
  range on their date partition);
- ``tunelake-lake``: every Bronze and Silver table's last commit and row count; the
  data-quality pass rate per day and validated table (``audit.quality_results``, one row
  per expectation evaluated, written by ``dq.reports.store``).

Table names come from one ``Lake`` (catalog, schema prefix, Bronze topics), so the committed
JSON names the default lake and tests render the same panels over a throwaway lake. The JSON
Grafana provisions is written by ``python -m dashboards`` into ``deploy/grafana/dashboards``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from grafana_foundation_sdk.builders import barchart, table, timeseries
from grafana_foundation_sdk.builders.common import TableSortByFieldState, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    FieldTextAlignment,
    LegendDisplayMode,
    LegendPlacement,
    VisibilityMode,
)

from dashboards.trino_query import PLUGIN_TYPE, Format, Trino
from dq.reports import RESULTS_TABLE
from ingestion.streams import STREAMS
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.settings import SOURCE_ROOT, Settings

DASHBOARDS_DIR = SOURCE_ROOT / "deploy" / "grafana" / "dashboards"
# The datasource deploy/grafana/provisioning/datasources/trino.yaml provisions.
DATASOURCE = model.DataSourceRef(type_val=PLUGIN_TYPE, uid="tunelake-trino")
TOP_TRACKS = 20


@dataclass(frozen=True)
class Lake:
    """Where the panels read: the Trino catalog, the schemas' prefix, the Bronze tables."""

    catalog: str
    schema_prefix: str
    bronze_tables: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> Lake:
        return cls(
            settings.trino_catalog,
            settings.trino_schema_prefix,
            tuple(spec.topic(settings) for spec in STREAMS.values()),
        )

    @classmethod
    def default(cls) -> Lake:
        """The default lake, whatever TUNELAKE_* variables this process has: what the
        committed dashboards name."""
        return cls.of(Settings.model_construct())

    def table(self, layer: str, name: str) -> str:
        return f'{self.catalog}."{self.schema_prefix}{layer}"."{name}"'

    def silver(self, name: str) -> str:
        return self.table("silver", name)

    def audit(self, name: str) -> str:
        return self.table("audit", name)

    def tables(self) -> Iterator[tuple[str, str]]:
        """(layer, table) of every table the freshness panel covers."""
        yield from (("bronze", name) for name in self.bronze_tables)
        yield from (("silver", name) for name in SILVER_TABLES)


def top_tracks_sql(lake: Lake) -> str:
    return f"""SELECT track_id,
  sum(plays) AS plays,
  sum(plays_from_recommendations) AS plays_from_recommendations,
  sum(likes) AS likes,
  sum(skips) AS skips
FROM {lake.silver("track_daily_stats")}
WHERE $__dateFilter(date)
GROUP BY track_id
ORDER BY plays DESC, track_id
LIMIT {TOP_TRACKS}"""


def plays_vs_recommendations_sql(lake: Lake) -> str:
    # One row per day: the plugin's time-series format wants a timestamp column.
    return f"""SELECT CAST(date AS timestamp(3)) AS time,
  sum(plays) AS plays,
  sum(impressions) AS recommendations,
  sum(plays_from_recommendations) AS plays_from_recommendations
FROM {lake.silver("track_daily_stats")}
WHERE $__dateFilter(date)
GROUP BY date
ORDER BY date"""


def play_through_sql(lake: Lake) -> str:
    # Played = played within the attribution window after the list was served (Silver's
    # recommendation_outcomes); versions in the order they were first served.
    return f"""SELECT model_version,
  CAST(count_if(played) AS double) / count(*) AS play_through_rate,
  CAST(count_if(skipped) AS double) / count(*) AS skip_rate,
  CAST(count_if(liked) AS double) / count(*) AS like_rate
FROM {lake.silver("recommendation_outcomes")}
WHERE $__dateFilter(impression_date)
GROUP BY model_version
ORDER BY min(served_at)"""


def freshness_sql(lake: Lake) -> str:
    # The Delta connector's "<table>$history" lists the table's commits.
    parts = [
        f"""SELECT '{layer}' AS layer, '{name}' AS table_name,
  (SELECT max("timestamp") FROM {lake.table(layer, name + "$history")}) AS last_commit,
  (SELECT count(*) FROM {lake.table(layer, name)}) AS row_count"""
        for layer, name in lake.tables()
    ]
    return "\nUNION ALL\n".join(parts) + "\nORDER BY layer, table_name"


def quality_pass_rate_sql(lake: Lake) -> str:
    # Warnings count as not passed: the rate is of expectations held, whatever their weight.
    return f"""SELECT check_date AS day,
  stage,
  table_name,
  count(*) AS expectations,
  count_if(NOT success) AS failed,
  count_if(NOT success AND severity = 'critical') AS critical_failed,
  CAST(count_if(success) AS double) / count(*) AS pass_rate
FROM {lake.audit(RESULTS_TABLE)}
WHERE $__dateFilter(check_date)
GROUP BY check_date, stage, table_name
ORDER BY check_date DESC, stage, table_name"""


def _query(sql: str, format: Format) -> Trino:
    return Trino(sql, format, DATASOURCE)


# A panel with a field config gets its plugin's custom field defaults when the SDK's model
# reads it back; panels that have one set a custom option, so what is written is that form.


def listening(lake: Lake) -> Dashboard:
    return (
        Dashboard("tunelake: listening and recommendations")
        .uid("tunelake-listening")
        .tags(["tunelake"])
        .timezone("utc")
        .time("now-30d", "now")
        .refresh("5m")
        .readonly()
        .with_panel(
            timeseries.Panel()
            .id(1)
            .title("Plays vs recommendations per day")
            .description("Plays, recommended tracks shown, and plays a recommendation led to.")
            .datasource(DATASOURCE)
            .with_target(_query(plays_vs_recommendations_sql(lake), Format.TIME_SERIES))
            .span(24)
            .height(9)
        )
        .with_panel(
            table.Panel()
            .id(2)
            .title(f"Top {TOP_TRACKS} tracks")
            .description("Most played tracks in the time range.")
            .datasource(DATASOURCE)
            .with_target(_query(top_tracks_sql(lake), Format.TABLE))
            .sort_by([TableSortByFieldState().display_name("plays").desc(True)])
            .span(12)
            .height(10)
        )
        .with_panel(
            barchart.Panel()
            .id(3)
            .title("Play-through rate per model version")
            .description(
                "Share of recommended tracks played within the attribution window, "
                "skipped, and liked, per model version that served them."
            )
            .datasource(DATASOURCE)
            .with_target(_query(play_through_sql(lake), Format.TABLE))
            .x_field("model_version")
            .unit("percentunit")
            .min(0)
            .max(1)
            .fill_opacity(80)
            .show_value(VisibilityMode.AUTO)
            .legend(
                VizLegendOptions()
                .show_legend(True)
                .display_mode(LegendDisplayMode.LIST)
                .placement(LegendPlacement.BOTTOM)
            )
            .span(12)
            .height(10)
        )
    )


def lake_health(lake: Lake) -> Dashboard:
    since_commit = model.DynamicConfigValue(id_val="unit", value="dateTimeFromNow")
    percent = model.DynamicConfigValue(id_val="unit", value="percentunit")
    return (
        Dashboard("tunelake: lake tables")
        .uid("tunelake-lake")
        .tags(["tunelake"])
        .timezone("utc")
        .time("now-24h", "now")
        .refresh("5m")
        .readonly()
        .with_panel(
            table.Panel()
            .id(1)
            .title("Freshness and row counts")
            .description("Every Bronze and Silver table: its last commit and its rows.")
            .datasource(DATASOURCE)
            .with_target(_query(freshness_sql(lake), Format.TABLE))
            .override_by_name("last_commit", [since_commit])
            .align(FieldTextAlignment.AUTO)
            .span(24)
            .height(12)
        )
        .with_panel(
            table.Panel()
            .id(2)
            .title("Data-quality pass rate")
            .description(
                "Per day and validated table: the share of expectations that held in the "
                "Silver runs' Bronze and Silver validations (a run validated twice counts "
                "twice), and how many failed, critical ones blocking publication."
            )
            .datasource(DATASOURCE)
            .with_target(_query(quality_pass_rate_sql(lake), Format.TABLE))
            .override_by_name("pass_rate", [percent])
            .align(FieldTextAlignment.AUTO)
            .span(24)
            .height(12)
        )
    )


def build(lake: Lake) -> dict[str, model.Dashboard]:
    """Every dashboard, by the file name it is provisioned from."""
    built = (listening(lake).build(), lake_health(lake).build())
    return {f"{d.uid}.json": d for d in built}


def panel_queries(lake: Lake) -> dict[str, str]:
    """Every panel's SQL, by panel title (unique across the dashboards; one query each)."""
    return {
        panel.title: target.raw_sql
        for dashboard in build(lake).values()
        for panel in dashboard.panels
        for target in panel.targets
    }


MACRO = re.compile(r"\$__(\w+)\(([^)]*)\)")


def expand_macros(sql: str, start: date, end: date) -> str:
    """A panel's SQL as the Trino plugin runs it for the time range ``start``..``end``: the
    plugin expands ``$__dateFilter(column)`` to ``column BETWEEN date '<start>' AND date
    '<end>'`` (its macros.go). The panels use no other macro; one would fail here."""

    def expand(match: re.Match) -> str:
        name, argument = match.groups()
        if name != "dateFilter":
            raise ValueError(f"macro $__{name} is not expanded here: {match.group(0)}")
        return f"{argument.strip()} BETWEEN date '{start}' AND date '{end}'"

    return MACRO.sub(expand, sql)


def render(dashboard: model.Dashboard) -> str:
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write(lake: Lake, directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard's JSON into ``directory``, removing dashboards no longer built."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = {name: render(d) for name, d in build(lake).items()}
    for stale in set(p.name for p in directory.glob("*.json")) - set(rendered):
        (directory / stale).unlink()
    written = []
    for name, text in rendered.items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written
