"""The Silver tables: where each lives, how it is partitioned, and its key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tunelake.settings import Settings


class Publish(StrEnum):
    INSERT_NEW = "insert_new"  # events: MERGE, insert rows whose key is not there yet
    REPLACE_DATES = "replace_dates"  # daily tables: replaceWhere the recomputed dates
    UPSERT = "upsert"  # all-time aggregates: MERGE, update or insert by key


@dataclass(frozen=True)
class SilverTable:
    name: str
    keys: tuple[str, ...]
    date_column: str | None
    publish: Publish

    def path(self, settings: Settings) -> str:
        return settings.silver_path(self.name)


EVENT_TABLES = (
    SilverTable("listens", ("event_id",), "play_date", Publish.INSERT_NEW),
    SilverTable("impressions", ("request_id", "track_id"), "impression_date", Publish.INSERT_NEW),
    SilverTable("feedback", ("event_id",), "feedback_date", Publish.INSERT_NEW),
)
AGGREGATE_TABLES = (
    SilverTable("track_daily_stats", ("date", "track_id"), "date", Publish.REPLACE_DATES),
    SilverTable("user_daily_stats", ("date", "user_id"), "date", Publish.REPLACE_DATES),
    SilverTable(
        "recommendation_outcomes",
        ("request_id", "track_id"),
        "impression_date",
        Publish.REPLACE_DATES,
    ),
    SilverTable("user_track_interactions", ("user_id", "track_id"), None, Publish.UPSERT),
)
SILVER_TABLES = {t.name: t for t in (*EVENT_TABLES, *AGGREGATE_TABLES)}

# The track_metadata DAG's tables, outside the build above: Bronze fetches (append-only)
# and the SCD2 dimension rebuilt from them (spark_jobs/track_metadata.py).
BRONZE_TRACK_METADATA = "track_metadata"
DIM_TRACK = "dim_track"
# The SCD2 user dimension, rebuilt from Bronze user_profiles (spark_jobs/silver/dim_user.py).
DIM_USER = "dim_user"
DIMENSIONS = (DIM_TRACK, DIM_USER)
