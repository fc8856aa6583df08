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
contained the track and started within the attribution window after the list was served.
"""

from __future__ import annotations

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


def _count_when(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def attributed_plays(
    listens: DataFrame, impressions: DataFrame, window_hours: int = DEFAULT_ATTRIBUTION_HOURS
) -> DataFrame:
    """Plays that answer an impression: same request, user and track, inside the window."""
    i, p = impressions.alias("i"), listens.alias("p")
    within = (
        (F.col("p.request_id") == F.col("i.request_id"))
        & (F.col("p.user_id") == F.col("i.user_id"))
        & (F.col("p.track_id") == F.col("i.track_id"))
        & (F.col("p.played_at") >= F.col("i.served_at") - F.expr("INTERVAL 5 MINUTES"))
        & (F.col("p.played_at") <= F.col("i.served_at") + F.expr(f"INTERVAL {window_hours} HOURS"))
    )
    return p.join(i, within, "left_semi")


def recommendation_outcomes(
    impressions: DataFrame,
    listens: DataFrame,
    feedback: DataFrame,
    window_hours: int = DEFAULT_ATTRIBUTION_HOURS,
) -> DataFrame:
    plays = (
        attributed_plays(listens, impressions, window_hours)
        .groupBy("request_id", "track_id")
        .agg(F.min("played_at").alias("first_played_at"))
    )
    reactions = feedback.groupBy("request_id", "track_id").agg(
        F.max(F.col("action") == "skip").alias("skipped"),
        F.max(F.col("action") == "like").alias("liked"),
        F.max(F.col("action") == "dislike").alias("disliked"),
    )
    return (
        impressions.join(plays, ["request_id", "track_id"], "left")
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


def track_daily_stats(
    listens: DataFrame,
    impressions: DataFrame,
    feedback: DataFrame,
    window_hours: int = DEFAULT_ATTRIBUTION_HOURS,
) -> DataFrame:
    from_recs = attributed_plays(listens, impressions, window_hours).select(
        "event_id", F.lit(True).alias("from_recommendation")
    )
    plays = (
        listens.join(from_recs, "event_id", "left")
        .groupBy(F.col("play_date").alias("date"), "track_id")
        .agg(
            F.count("*").alias("plays"),
            _count_when(F.col("from_recommendation")).alias("plays_from_recommendations"),
            F.countDistinct("user_id").alias("unique_listeners"),
            F.sum("ms_played").alias("ms_played"),
        )
    )
    shown = impressions.groupBy(F.col("impression_date").alias("date"), "track_id").agg(
        F.countDistinct("request_id").alias("impressions"),
        F.count("*").alias("times_recommended"),
    )
    reactions = feedback.groupBy(F.col("feedback_date").alias("date"), "track_id").agg(
        _count_when(F.col("action") == "skip").alias("skips"),
        _count_when(F.col("action") == "like").alias("likes"),
    )
    return (
        plays.join(shown, ["date", "track_id"], "full")
        .join(reactions, ["date", "track_id"], "full")
        .select(
            "date",
            "track_id",
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in TRACK_DAILY_COUNTS],
        )
    )


def user_daily_stats(
    listens: DataFrame, impressions: DataFrame, window_hours: int = DEFAULT_ATTRIBUTION_HOURS
) -> DataFrame:
    from_recs = attributed_plays(listens, impressions, window_hours).select(
        "event_id", F.lit(True).alias("from_recommendation")
    )
    plays = (
        listens.join(from_recs, "event_id", "left")
        .groupBy(F.col("play_date").alias("date"), "user_id")
        .agg(
            F.count("*").alias("plays"),
            F.countDistinct("track_id").alias("distinct_tracks"),
            F.sum("ms_played").alias("ms_played"),
            _count_when(F.col("from_recommendation")).alias("recommended_tracks_played"),
        )
    )
    received = impressions.groupBy(F.col("impression_date").alias("date"), "user_id").agg(
        F.countDistinct("request_id").alias("recommendations_received")
    )
    return plays.join(received, ["date", "user_id"], "full").select(
        "date",
        "user_id",
        *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in USER_DAILY_COUNTS],
    )


def user_track_interactions(
    listens: DataFrame,
    impressions: DataFrame,
    feedback: DataFrame,
    window_hours: int = DEFAULT_ATTRIBUTION_HOURS,
) -> DataFrame:
    played = listens.groupBy("user_id", "track_id").agg(
        F.count("*").alias("play_count"),
        F.sum("ms_played").alias("ms_played"),
        F.max("played_at").alias("last_played_at"),
    )
    recommended = impressions.groupBy("user_id", "track_id").agg(
        F.countDistinct("request_id").alias("recommended_count")
    )
    answered = (
        attributed_plays(listens, impressions, window_hours)
        .groupBy("user_id", "track_id")
        .agg(F.countDistinct("request_id").alias("recommended_and_played"))
    )
    reactions = feedback.groupBy("user_id", "track_id").agg(
        _count_when(F.col("action") == "skip").alias("skips"),
        _count_when(F.col("action") == "like").alias("likes"),
        _count_when(F.col("action") == "dislike").alias("dislikes"),
    )
    keys = ["user_id", "track_id"]
    return (
        played.join(recommended, keys, "full")
        .join(answered, keys, "full")
        .join(reactions, keys, "full")
        .select(
            *keys,
            *[F.coalesce(c, F.lit(0)).cast("long").alias(c) for c in INTERACTION_COUNTS],
            "last_played_at",
        )
    )
