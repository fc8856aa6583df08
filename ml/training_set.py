"""The ALS training set from the published Silver tables (pure DataFrame -> DataFrame).

Inputs: Silver ``user_track_interactions`` (all-time counts per (user, track)) and Silver
``listens`` (one row per play, with ``played_at``). Only published Silver is read, so
quarantined or refused events never reach a model.

A user deleted in PostgreSQL is left out before anything else (``without_erased``), even
before the privacy job has removed their rows from Silver.

Outputs:
- ``confidence``: (user_id, track_id, confidence), one row per pair with a positive
  implicit-feedback confidence (the formula is in ``confidence``'s docstring and README);
- ``ratings``: what ALS trains on under one ``AlsParams``' preference options (scaling,
  time decay, turned-down pairs as preference 0);
- ``id_mapping``: (id, index) per side, contiguous integers 0..n-1 in id order;
- ``chronological_holdout``: each user's listens split by time, and ``split``: the
  training confidences a model may see plus the held-out (user, track) pairs it is
  judged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ml.model import DEFAULT_WEIGHTS, AlsParams, ConfidenceWeights
from spark_jobs.silver import privacy

KEYS = ["user_id", "track_id"]
# Each user's last 20% of plays (by time) are held out for the offline evaluation.
HOLDOUT_FRACTION = 0.2
# The hyper-parameter search validates on each user's last 20% of training plays.
VALIDATION_FRACTION = 0.2


def without_erased(
    interactions: DataFrame, listens: DataFrame, erased: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """(interactions, listens) without what a privacy delete erases (``erased``:
    ``spark_jobs.silver.privacy.erasures``): every listen it covers, and every interaction
    of a user deleted now. Interaction counts carry no time, so a user id created again
    after its deletion keeps its pairs here; the privacy job recomputes them from the
    events it kept."""
    deleted_now = erased.where(F.col("erase_before").isNull()).select("user_id")
    return (
        interactions.join(F.broadcast(deleted_now), "user_id", "left_anti"),
        privacy.keep(listens, erased, "accepted_at"),
    )


def _scored(interactions: DataFrame, weights: ConfidenceWeights) -> DataFrame:
    value = weights.of(
        play_count=F.col("play_count"),
        ms_played=F.col("ms_played"),
        recommended_and_played=F.col("recommended_and_played"),
        likes=F.col("likes"),
        skips=F.col("skips"),
        dislikes=F.col("dislikes"),
    )
    return interactions.withColumn("confidence", value.cast("double"))


def confidence(interactions: DataFrame, weights: ConfidenceWeights = DEFAULT_WEIGHTS) -> DataFrame:
    """(user_id, track_id, confidence) from ``user_track_interactions`` counts, by
    ``ConfidenceWeights.of`` (the formula is there and in README); pairs whose confidence
    is 0 or below are dropped."""
    scored = _scored(interactions, weights)
    return scored.where(F.col("confidence") > 0).select(*KEYS, "confidence")


def rejected(interactions: DataFrame, weights: ConfidenceWeights = DEFAULT_WEIGHTS) -> DataFrame:
    """(user_id, track_id) pairs the user turned down: skipped or disliked, and not
    outweighed by plays or likes (confidence 0 or below). They carry no taste to train on,
    but the model keeps them beside what the user played, so they are not served again."""
    scored = _scored(interactions, weights)
    return scored.where(_turned_down() & (F.col("confidence") <= 0)).select(*KEYS)


def _turned_down() -> Column:
    return (F.col("skips") > 0) | (F.col("dislikes") > 0)


def _decayed(interactions: DataFrame, listens: DataFrame, half_life_days: float) -> DataFrame:
    """``interactions`` with play counts and minutes summed from ``listens``, each play
    weighing ``0.5 ** (age / half_life_days)``, its age in days before the last play."""
    end = listens.agg(F.max(F.col("played_at").cast("double"))).first()[0]
    age_days = (F.lit(end) - F.col("played_at").cast("double")) / 86_400.0
    weight = F.pow(F.lit(0.5), age_days / F.lit(half_life_days))
    played = listens.groupBy(*KEYS).agg(
        F.sum(weight).alias("play_count"), F.sum(weight * F.col("ms_played")).alias("ms_played")
    )
    zero = F.lit(0.0)
    counts = interactions.drop("play_count", "ms_played").join(played, KEYS, "left")
    return counts.withColumns(
        {
            "play_count": F.coalesce("play_count", zero),
            "ms_played": F.coalesce("ms_played", zero),
            "recommended_and_played": F.least(
                F.col("recommended_and_played").cast("double"), F.coalesce("play_count", zero)
            ),
        }
    )


def ratings(
    interactions: DataFrame,
    params: AlsParams,
    listens: DataFrame | None = None,
    weights: ConfidenceWeights = DEFAULT_WEIGHTS,
) -> DataFrame:
    """(user_id, track_id, confidence): the preference ALS trains on under ``params``, one
    row per pair a model keeps out of its lists (positive confidence, or turned down):

    - a positive pair: its confidence (plays and minutes decayed by
      ``params.half_life_days``), ``params.scale``d; 0 if decay leaves nothing;
    - a turned-down pair: with ``params.negatives``, minus its scaled weight (at least one
      play's), which MLlib reads as preference 0 with that confidence; else 0.

    Pairs at 0 weigh nothing in training: they keep the track out of the user's lists.
    ``listens`` (the plays behind ``interactions``) are needed only to decay them."""
    if params.half_life_days and listens is None:
        raise ValueError("a half-life decays plays by their time: give the listens")
    pairs = (
        _scored(interactions, weights)
        .select(
            *KEYS,
            (F.col("confidence") > 0).alias("positive"),
            _turned_down().alias("turned_down"),
            F.col("confidence").alias("undecayed"),
        )
        .where(F.col("positive") | F.col("turned_down"))
    )
    if params.half_life_days:
        decayed = _decayed(interactions, listens, params.half_life_days)
        pairs = pairs.join(_scored(decayed, weights).select(*KEYS, "confidence"), KEYS)
    else:
        pairs = pairs.withColumn("confidence", F.col("undecayed"))
    zero = F.lit(0.0)
    positive = F.when(F.col("confidence") > 0, params.scale(F.col("confidence"), F.log1p))
    negative = (
        -params.scale(F.greatest(-F.col("undecayed"), F.lit(weights.play)), F.log1p)
        if params.negatives
        else zero
    )
    rating = F.when(F.col("positive"), F.coalesce(positive, zero)).otherwise(negative)
    return pairs.select(*KEYS, rating.cast("double").alias("confidence"))


def id_mapping(df: DataFrame, column: str) -> DataFrame:
    """(``column``, index): every distinct non-null value of ``column`` numbered 0..n-1 in
    sorted order, so the same ids always get the same integers."""
    ids = df.select(column).where(F.col(column).isNotNull()).distinct()
    # One ordered partition (ids only, a few MB even for millions), and no Python workers.
    order = Window.orderBy(column)
    return ids.select(column, (F.row_number().over(order) - 1).cast("int").alias("index"))


def chronological_holdout(
    listens: DataFrame, fraction: float = HOLDOUT_FRACTION
) -> tuple[DataFrame, DataFrame]:
    """(training, held out) listens: each user's last ``floor(fraction * plays)`` plays by
    ``played_at`` are held out (ties broken by ``event_id``), so a user with fewer than
    ``1 / fraction`` plays keeps them all for training."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    by_user = Window.partitionBy("user_id")
    latest_first = by_user.orderBy(F.col("played_at").desc(), F.col("event_id").desc())
    ranked = listens.withColumn("_from_end", F.row_number().over(latest_first)).withColumn(
        "_held", F.floor(F.count("*").over(by_user) * F.lit(fraction))
    )
    held = F.col("_from_end") <= F.col("_held")
    return (
        ranked.where(~held).drop("_from_end", "_held"),
        ranked.where(held).drop("_from_end", "_held"),
    )


def interactions_within(
    interactions: DataFrame, listens: DataFrame, held_out: DataFrame
) -> DataFrame:
    """The interaction counts a model trained on ``listens`` may see.

    Play counts and listening time come from ``listens`` alone; recommended-and-played is
    capped at those plays. The other counts (likes, skips, dislikes, times recommended)
    carry no time, so every pair played in ``held_out`` but never in ``listens`` is
    removed whole: nothing about a held-out track reaches the model through them.
    """
    played = listens.groupBy(*KEYS).agg(
        F.count("*").cast("long").alias("play_count"),
        F.sum("ms_played").cast("long").alias("ms_played"),
    )
    unseen = held_out.select(*KEYS).distinct().join(played.select(*KEYS), KEYS, "left_anti")
    counts = interactions.drop("play_count", "ms_played", "last_played_at").join(
        played, KEYS, "full"
    )
    zero = F.lit(0).cast("long")
    play_count = F.coalesce("play_count", zero)
    return counts.join(unseen, KEYS, "left_anti").select(
        *KEYS,
        play_count.alias("play_count"),
        F.coalesce("ms_played", zero).alias("ms_played"),
        F.coalesce("recommended_count", zero).alias("recommended_count"),
        F.least(F.coalesce("recommended_and_played", zero), play_count).alias(
            "recommended_and_played"
        ),
        F.coalesce("skips", zero).alias("skips"),
        F.coalesce("likes", zero).alias("likes"),
        F.coalesce("dislikes", zero).alias("dislikes"),
    )


@dataclass(frozen=True)
class Split:
    """One offline experiment's data: what the model is trained on, and what it is
    judged on."""

    interactions: DataFrame  # counts restricted to the training listens
    listens: DataFrame  # the training listens
    held_out: DataFrame  # the held-out listens
    training: DataFrame  # (user_id, track_id, confidence) of ``interactions``
    relevant: DataFrame  # (user_id, track_id): held out, and not kept out of lists

    def ratings(self, params: AlsParams) -> DataFrame:
        """What ALS trains on under ``params`` (``ratings``)."""
        return ratings(self.interactions, params, self.listens)

    def relevant_after(self, instant: datetime) -> DataFrame:
        """``relevant`` restricted to the held-out plays after ``instant`` (aware)."""
        later = self.held_out.where(F.col("played_at").cast("double") > instant.timestamp())
        return _relevant(later, self.interactions)


def _relevant(held_out: DataFrame, interactions: DataFrame) -> DataFrame:
    """The held-out pairs a model may recommend: not played nor turned down in training
    (serving leaves those out, whatever the preference options)."""
    kept_out = confidence(interactions).select(*KEYS).union(rejected(interactions))
    return held_out.select(*KEYS).distinct().join(kept_out, KEYS, "left_anti")


def split(
    interactions: DataFrame,
    training_listens: DataFrame,
    held_out_listens: DataFrame,
    weights: ConfidenceWeights = DEFAULT_WEIGHTS,
) -> Split:
    """Training confidences from the training listens, and as relevant the held-out
    tracks each user had not already got in training (serving leaves those out, so they
    could never be recommended)."""
    within = interactions_within(interactions, training_listens, held_out_listens)
    training = confidence(within, weights)
    return Split(
        within,
        training_listens,
        held_out_listens,
        training,
        _relevant(held_out_listens, within),
    )


def holdout_split(
    interactions: DataFrame, listens: DataFrame, fraction: float = HOLDOUT_FRACTION
) -> Split:
    """The evaluation split: each user's last ``fraction`` of plays held out."""
    return split(interactions, *chronological_holdout(listens, fraction))


def validation_split(outer: Split, fraction: float = VALIDATION_FRACTION) -> Split:
    """The hyper-parameter search's split inside ``outer``'s training data, made the way
    the test split is (each user's last ``fraction`` of plays), so the search tunes for the
    task the gate judges: one global time cut would leave the users whose history ended
    earlier without a validation play."""
    return split(outer.interactions, *chronological_holdout(outer.listens, fraction))
