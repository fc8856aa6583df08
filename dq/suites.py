"""Expectation suites for every Bronze and Silver table, declared as code.

Critical expectations block publication; warnings (such as row-count drift) are reported
and kept with the results but let the batch through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import great_expectations as gx
from great_expectations.expectations.metadata_types import FailureSeverity

from spark_jobs.bronze.rules import UUID_PATTERN
from spark_jobs.silver.aggregates import INTERACTION_COUNTS, TRACK_DAILY_COUNTS, USER_DAILY_COUNTS

ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"
E = gx.expectations


def _not_null(*columns: str) -> list:
    return [E.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _non_negative(*columns: str) -> list:
    return [E.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def _ids(*columns: str) -> list:
    return [E.ExpectColumnValuesToMatchRegex(column=c, regex=ID_PATTERN) for c in columns]


def _timestamps_in_range(*columns: str, now: datetime) -> list:
    # History imports go back years; nothing may come from the future (5 minutes' slack).
    earliest, latest = datetime(2000, 1, 1, tzinfo=UTC), now + timedelta(minutes=5)
    return [
        E.ExpectColumnValuesToBeBetween(column=c, min_value=earliest, max_value=latest)
        for c in columns
    ]


def _unique(*keys: str) -> list:
    if len(keys) == 1:
        return [E.ExpectColumnValuesToBeUnique(column=keys[0])]
    return [E.ExpectCompoundColumnsToBeUnique(column_list=list(keys))]


def _at_least(a: str, b: str) -> list:
    return [E.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True)]


def row_count_drift(expected: float | None) -> list:
    """A warning when a batch holds under a fifth or over five times the usual rows."""
    if not expected:
        return []
    return [
        E.ExpectTableRowCountToBeBetween(
            min_value=int(expected / 5),
            max_value=int(expected * 5) + 1,
            severity=FailureSeverity.WARNING,
        )
    ]


def bronze_suite(stream: str, now: datetime) -> list:
    envelope = [
        *_not_null("event_id", "event_time", "user_id"),
        E.ExpectColumnValuesToMatchRegex(column="event_id", regex=UUID_PATTERN),
        *_unique("event_id"),
        *_timestamps_in_range("event_time", now=now),
    ]
    if stream == "listens":
        return [
            *envelope,
            *_not_null("track_id", "played_at", "ms_played"),
            *_non_negative("ms_played"),
            *_timestamps_in_range("played_at", now=now),
        ]
    if stream == "feedback":
        return [
            *envelope,
            *_not_null("track_id", "request_id", "action"),
            E.ExpectColumnValuesToBeInSet(
                column="action", value_set=["play", "skip", "like", "dislike"]
            ),
        ]
    if stream == "recommendations":
        return [*envelope, *_not_null("request_id", "model_version", "items")]
    raise ValueError(f"no Bronze suite for {stream}")


def silver_suite(table: str, now: datetime) -> list:
    if table == "listens":
        return [
            *_not_null("event_id", "user_id", "track_id", "played_at", "play_date"),
            *_unique("event_id"),
            *_ids("user_id", "track_id"),
            *_non_negative("ms_played"),
            *_timestamps_in_range("played_at", now=now),
        ]
    if table == "impressions":
        return [
            *_not_null("request_id", "user_id", "track_id", "rank", "impression_date"),
            *_unique("request_id", "track_id"),
            E.ExpectColumnValuesToBeBetween(column="rank", min_value=1),
        ]
    if table == "feedback":
        return [
            *_not_null("event_id", "user_id", "track_id", "request_id", "action"),
            *_unique("event_id"),
        ]
    if table == "track_daily_stats":
        counts = TRACK_DAILY_COUNTS
        return [
            *_not_null("date", "track_id", *counts),
            *_unique("date", "track_id"),
            *_ids("track_id"),
            *_non_negative(*counts),
            *_at_least("plays", "plays_from_recommendations"),
            *_at_least("plays", "unique_listeners"),
            *_at_least("times_recommended", "impressions"),
        ]
    if table == "user_daily_stats":
        counts = USER_DAILY_COUNTS
        return [
            *_not_null("date", "user_id", *counts),
            *_unique("date", "user_id"),
            *_ids("user_id"),
            *_non_negative(*counts),
            *_at_least("plays", "recommended_tracks_played"),
            *_at_least("plays", "distinct_tracks"),
        ]
    if table == "user_track_interactions":
        counts = INTERACTION_COUNTS
        return [
            *_not_null("user_id", "track_id", *counts),
            *_unique("user_id", "track_id"),
            *_ids("user_id", "track_id"),
            *_non_negative(*counts),
            *_at_least("recommended_count", "recommended_and_played"),
            *_at_least("play_count", "recommended_and_played"),
        ]
    if table == "recommendation_outcomes":
        return [
            *_not_null("request_id", "track_id", "rank", "played", "skipped", "liked"),
            *_unique("request_id", "track_id"),
            E.ExpectColumnValuesToBeBetween(column="rank", min_value=1),
        ]
    raise ValueError(f"no Silver suite for {table}")
