"""Expectation suites for every Bronze and Silver table, declared as code.

Critical expectations block publication; warnings (such as row-count drift) are reported
and kept with the results but let the batch through.

Row-level validity (ids, time bounds, ranges, actions) is ``ingestion/validity.py``'s, the
declaration the API (422) and the Bronze rules (quarantine) enforce before a row lands: the
suites render the same bounds, so they can only fail for rows that bypassed both (written
into a table by hand, or landed before a bound was tightened). What else they check is
batch-level: keys present and unique in Silver, aggregates consistent, row-count drift.
Bronze keeps no uniqueness expectation: a client's retry may land the same content-derived
``event_id`` twice, and Silver deduplicates by it.
"""

from __future__ import annotations

from datetime import datetime

import great_expectations as gx
from great_expectations.expectations.metadata_types import FailureSeverity

from ingestion.streams import Stream
from ingestion.validity import (
    EVENT_RULES,
    IDENTIFIER,
    MIN_RANK,
    FieldRule,
    Instant,
    OneOf,
    Present,
    Text,
    TimeBounds,
    Whole,
)
from spark_jobs.silver.aggregates import INTERACTION_COUNTS, TRACK_DAILY_COUNTS, USER_DAILY_COUNTS
from tunelake.settings import Settings

E = gx.expectations


def _not_null(*columns: str) -> list:
    return [E.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _non_negative(*columns: str) -> list:
    return [E.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def _ids(*columns: str) -> list:
    return [E.ExpectColumnValuesToMatchRegex(column=c, regex=IDENTIFIER.pattern) for c in columns]


def _valid_values(rule: FieldRule, bounds: TimeBounds) -> list:
    """``rule``'s bounds as expectations on its column (nulls are ``_not_null``'s)."""
    column, bound = rule.name, rule.constraint
    if isinstance(bound, Text):
        lengths = E.ExpectColumnValueLengthsToBeBetween(
            column=column, min_value=bound.min_length, max_value=bound.max_length
        )
        if bound.pattern is None:
            return [lengths]
        return [lengths, E.ExpectColumnValuesToMatchRegex(column=column, regex=bound.pattern)]
    if isinstance(bound, Whole):
        return [
            E.ExpectColumnValuesToBeBetween(
                column=column, min_value=bound.minimum, max_value=bound.maximum
            )
        ]
    if isinstance(bound, Instant):
        return [
            E.ExpectColumnValuesToBeBetween(
                column=column, min_value=bounds.earliest, max_value=bounds.latest
            )
        ]
    if isinstance(bound, OneOf):
        return [E.ExpectColumnValuesToBeInSet(column=column, value_set=list(bound.values))]
    if isinstance(bound, Present):
        return []
    raise TypeError(f"no expectation renders {bound!r}")


def _conforming(stream: Stream, bounds: TimeBounds, columns: tuple[str, ...]) -> list:
    """The validity rules of ``stream`` whose fields are among ``columns`` (a Silver table
    flattens the ``items`` of a list into columns of the same names)."""
    return [
        expectation
        for rule in EVENT_RULES[stream]
        if rule.name in columns
        for expectation in _valid_values(rule, bounds)
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


def bronze_suite(stream: str, settings: Settings, now: datetime) -> list:
    """The Bronze rules again, with the same bounds: only rows that bypassed them fail."""
    rules = [r for r in EVENT_RULES[Stream(stream)] if r.within is None]
    bounds = TimeBounds.at(settings, now)
    return [
        *_not_null(*(r.name for r in rules if r.required)),
        *_conforming(Stream(stream), bounds, tuple(r.name for r in rules)),
    ]


def silver_suite(table: str, settings: Settings, now: datetime) -> list:
    bounds = TimeBounds.at(settings, now)
    if table == "listens":
        return [
            *_not_null("event_id", "user_id", "track_id", "played_at", "play_date"),
            *_unique("event_id"),
            *_conforming(
                Stream.LISTENS,
                bounds,
                ("event_id", "user_id", "track_id", "played_at", "ms_played", "request_id"),
            ),
        ]
    if table == "impressions":
        return [
            *_not_null("request_id", "user_id", "track_id", "rank", "impression_date"),
            *_unique("request_id", "track_id"),
            *_conforming(
                Stream.RECOMMENDATIONS,
                bounds,
                ("request_id", "user_id", "model_version", "track_id", "rank"),
            ),
        ]
    if table == "feedback":
        return [
            *_not_null("event_id", "user_id", "track_id", "request_id", "action"),
            *_unique("event_id"),
            *_conforming(
                Stream.FEEDBACK, bounds, ("event_id", "user_id", "request_id", "track_id", "action")
            ),
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
            E.ExpectColumnValuesToBeBetween(column="rank", min_value=MIN_RANK),
        ]
    raise ValueError(f"no Silver suite for {table}")
