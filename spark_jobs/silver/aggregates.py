"""Silver aggregates over the Silver event tables (pure DataFrame -> DataFrame).

- ``track_daily_stats`` (date, track_id): impressions (lists showing the track), times
  recommended, plays, plays from recommendations, skips, likes, unique listeners, ms played;
- ``user_daily_stats`` (date, user_id): plays, distinct tracks, ms played, recommendations
  received, recommended tracks played;
- ``user_track_interactions`` (user_id, track_id): play count, ms played, last played,
  times recommended, recommended-and-played, skips, likes, dislikes (the ALS input);
- ``recommendation_outcomes`` (request_id, track_id): rank, model_version, and whether the
  track was played within the attribution window, skipped or liked.

A play counts "from recommendations" when it quotes the ``request_id`` of a list that
contained the track and started within the attribution window after the list was served
(``attribute`` flags every play once; the daily tables aggregate the flagged plays).
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_ATTRIBUTION_HOURS = 24
TRACK_DAILY_COUNTS = (
    "impressions",
    "times_recommended",
    "plays",
    "plays_from_recommendations",
    "skips",
    "likes",
    "unique_listeners",
    "ms_played",
)
USER_DAILY_COUNTS = (
    "plays",
    "distinct_tracks",
    "ms_played",
    "recommendations_received",
    "recommended_tracks_played",
)
INTERACTION_COUNTS = (
    "play_count",
    "ms_played",
    "recommended_count",
    "recommended_and_played",
    "skips",
    "likes",
    "dislikes",
)


def on_dates(column: str, dates: list[date]) -> Column:
    """``column`` is one of ``dates`` (never, for none)."""
    return F.col(column).isin([d.isoformat() for d in dates]) if dates else F.lit(False)


def days_around(dates: list[date], before: int, after: int) -> list[date]:
    """Every day from ``before`` days before to ``after`` days after each of ``dates``."""
    return sorted({d + timedelta(days=k) for d in dates for k in range(-before, after + 1)})


def window_days(window_hours: int) -> int:
    """Days a list's attribution window reaches past the day it was served on."""
    return window_hours // 24 + 1


def plays_on(
    listens: DataFrame, impressions: DataFrame, dates: list[date], window_hours: int
) -> DataFrame:
    """The plays of ``dates``, attributed (``attribute``) to the lists served in the window
    before them: of tables holding any dates, only those days' listens and the impressions
    around them are read."""
    return attribute(
        listens.where(on_dates("play_date", dates)),
        impressions.where(
            on_dates("impression_date", days_around(dates, window_days(window_hours), 1))
        ),
        window_hours,
    )


def _count_when(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def _answers(event: str, at: str, window_hours: int, *keys: str) -> Column:
    """The join condition "event ``event`` answers impression ``i``": the same ``keys``,
    and ``at`` from 5 minutes before the list was served (clock skew) to the window's end."""
    served, time = F.col("i.served_at"), F.col(f"{event}.{at}")
    condition = (time >= served - F.expr("INTERVAL 5 MINUTES")) & (
        time <= served + F.expr(f"INTERVAL {window_hours} HOURS")
    )
    for key in keys:
        condition = condition & (F.col(f"{event}.{key}") == F.col(f"i.{key}"))
    return condition


def attribute(
    listens: DataFrame, impressions: DataFrame, window_hours: int = DEFAULT_ATTRIBUTION_HOURS
) -> DataFrame:
    """``listens`` plus ``from_recommendation``: the play answers an impression (same
    request, user and track, inside the window). One left join every aggregate shares;
    an impression's key is (request, track), so no play is duplicated."""
    i, p = impressions.alias("i"), listens.alias("p")
    within = _answers("p", "played_at", window_hours, "request_id", "user_id", "track_id")
    return p.join(
        i.select("request_id", "user_id", "track_id", "served_at"), within, "left"
    ).select("p.*", F.col("i.served_at").isNotNull().alias("from_recommendation"))


def recommendation_outcomes(
    impressions: DataFrame,
    plays: DataFrame,
    feedback: DataFrame,
    window_hours: int = DEFAULT_ATTRIBUTION_HOURS,
) -> DataFrame:
    """One row per impression; ``plays``: listens with ``from_recommendation`` (see
    ``attribute``). Feedback counts within the same window as plays, so an outcome only
    ever depends on events dated near its impression."""
    answers = (
        plays.where("from_recommendation")
        .groupBy("request_id", "track_id")
        .agg(F.min("played_at").alias("first_played_at"))
    )
    i, f = impressions.alias("i"), feedback.alias("f")
    in_window = _answers("f", "given_at", window_hours, "request_id", "track_id")
    reactions = (
        f.join(i.select("request_id", "track_id", "served_at"), in_window, "left_semi")
        .groupBy("request_id", "track_id")
        .agg(
            F.max(F.col("action") == "skip").alias("skipped"),
            F.max(F.col("action") == "like").alias("liked"),
            F.max(F.col("action") == "dislike").alias("disliked"),
        )
    )
    return (
        impressions.join(answers, ["request_id", "track_id"], "left")
        .join(reactions, ["request_id", "track_id"], "left")
        .select(
            "impression_date",
            "request_id",
            "track_id",
            "user_id",
            "rank",
            "model_version",
            "served_at",
            F.col("first_played_at").isNotNull().alias("played"),
            "first_played_at",
            F.coalesce("skipped", F.lit(False)).alias("skipped"),
            F.coalesce("liked", F.lit(False)).alias("liked"),
            F.coalesce("disliked", F.lit(False)).alias("disliked"),
        )
    )


def track_daily_stats(plays: DataFrame, impressions: DataFrame, feedback: DataFrame) -> DataFrame:
    """``plays``: listens with ``from_recommendation`` (see ``attribute``)."""
    played = plays.groupBy(F.col("play_date").alias("date"), "track_id").agg(
        F.count("*").alias("plays"),
        _count_when(F.col("from_recommendation")).alias("plays_from_recommendations"),
        F.countDistinct("user_id").alias("unique_listeners"),
        F.sum("ms_played").alias("ms_played"),
    )
    # (request, track) is the impression key: counting rows counts distinct lists.
    shown = impressions.groupBy(F.col("impression_date").alias("date"), "track_id").agg(
        F.count("*").alias("impressions"),
        F.count("*").alias("times_recommended"),
    )
    reactions = feedback.groupBy(F.col("feedback_date").alias("date"), "track_id").agg(
        _count_when(F.col("action") == "skip").alias("skips"),
        _count_when(F.col("action") == "like").alias("likes"),
    )
    return (
        played.join(shown, ["date", "track_id"], "full")
        .join(reactions, ["date", "track_id"], "full")
        .select(
            "date",
            "track_id",
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in TRACK_DAILY_COUNTS],
        )
    )


def user_daily_stats(plays: DataFrame, impressions: DataFrame) -> DataFrame:
    """``plays``: listens with ``from_recommendation`` (see ``attribute``)."""
    played = plays.groupBy(F.col("play_date").alias("date"), "user_id").agg(
        F.count("*").alias("plays"),
        F.countDistinct("track_id").alias("distinct_tracks"),
        F.sum("ms_played").alias("ms_played"),
        _count_when(F.col("from_recommendation")).alias("recommended_tracks_played"),
    )
    received = impressions.groupBy(F.col("impression_date").alias("date"), "user_id").agg(
        F.countDistinct("request_id").alias("recommendations_received")
    )
    return played.join(received, ["date", "user_id"], "full").select(
        "date",
        "user_id",
        *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in USER_DAILY_COUNTS],
    )


def user_track_interactions(
    listens: DataFrame, impressions: DataFrame, answered: DataFrame, feedback: DataFrame
) -> DataFrame:
    """Interaction counts of the given events; ``answered``: played outcomes (one row per
    answered impression). Counts are additive, so the table is kept up to date by adding
    the counts of each run's new events (``add_interactions``)."""
    played = listens.groupBy("user_id", "track_id").agg(
        F.count("*").alias("play_count"),
        F.sum("ms_played").alias("ms_played"),
        F.max("played_at").alias("last_played_at"),
    )
    recommended = impressions.groupBy("user_id", "track_id").agg(
        F.count("*").alias("recommended_count")
    )
    played_recommended = answered.groupBy("user_id", "track_id").agg(
        F.count("*").alias("recommended_and_played")
    )
    reactions = feedback.groupBy("user_id", "track_id").agg(
        _count_when(F.col("action") == "skip").alias("skips"),
        _count_when(F.col("action") == "like").alias("likes"),
        _count_when(F.col("action") == "dislike").alias("dislikes"),
    )
    keys = ["user_id", "track_id"]
    return (
        played.join(recommended, keys, "full")
        .join(played_recommended, keys, "full")
        .join(reactions, keys, "full")
        .select(
            *keys,
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in INTERACTION_COUNTS],
            "last_played_at",
        )
    )


def newly_answered(outcomes: DataFrame, before: DataFrame) -> DataFrame:
    """The played ``outcomes`` that were not played in ``before`` (the published outcomes):
    the impressions a run's events answered for the first time."""
    keys = ["request_id", "track_id"]
    return outcomes.where("played").join(before.where("played").select(*keys), keys, "left_anti")


def add_interactions(current: DataFrame, increment: DataFrame) -> DataFrame:
    """The new rows of every (user, track) in ``increment``: current counts plus increment."""
    keys = ["user_id", "track_id"]
    c = current.join(increment.select(*keys), keys, "semi").alias("c")
    return c.join(increment.alias("n"), keys, "full").select(
        *keys,
        *[
            (F.coalesce(f"c.{k}", F.lit(0)) + F.coalesce(f"n.{k}", F.lit(0))).alias(k)
            for k in INTERACTION_COUNTS
        ],
        # greatest() skips nulls: a pair recommended but never played stays null.
        F.greatest("c.last_played_at", "n.last_played_at").alias("last_played_at"),
    )
