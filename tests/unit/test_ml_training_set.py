"""The ALS training set on tiny DataFrames: confidence formula, id mapping, time splits, and
MLlib ALS against the Spark-free fold-in."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from pyspark.sql import functions as F

from ml import als, training_set
from ml.model import AlsParams

INTERACTIONS = (
    "user_id string, track_id string, play_count long, ms_played long, "
    "recommended_count long, recommended_and_played long, skips long, likes long, "
    "dislikes long, last_played_at timestamp"
)
LISTENS = "event_id string, user_id string, track_id string, played_at timestamp, ms_played long"
T0 = datetime(2024, 3, 1, 8, 0)


def interactions(spark, rows):
    """rows: (user, track, plays, ms, recommended, recommended_and_played, skips, likes,
    dislikes)."""
    return spark.createDataFrame([(*r, None) for r in rows], INTERACTIONS)


def listens(spark, rows):
    """rows: (user, track, hours after T0); event ids in row order."""
    return spark.createDataFrame(
        [(f"e{i:03d}", u, t, T0 + timedelta(hours=h), 60_000) for i, (u, t, h) in enumerate(rows)],
        LISTENS,
    )


def pairs(df, value=None):
    cols = ["user_id", "track_id", *([value] if value else [])]
    return {tuple(r) for r in df.select(*cols).collect()}


def test_confidence_formula_and_non_positive_pairs_dropped(spark):
    df = interactions(
        spark,
        [
            # 3 plays + 10 minutes * 0.1 + 2 * 1 recommended-and-played + 4 * 1 like = 10
            ("u1", "t1", 3, 600_000, 2, 1, 0, 1, 0),
            # 1 play + 0.1 - 2 skips: negative, dropped
            ("u1", "t2", 1, 60_000, 0, 0, 2, 0, 0),
            # recommended, never played, disliked: dropped
            ("u1", "t3", 0, 0, 1, 0, 0, 0, 1),
            # liked without playing: 4
            ("u2", "t1", 0, 0, 0, 0, 0, 1, 0),
            # a play cancelled by a skip: exactly 0, dropped
            ("u2", "t2", 1, 0, 0, 0, 1, 0, 0),
            # a like cancelled by a dislike, two plays of 30 s: 2 + 0.05
            ("u3", "t1", 2, 30_000, 0, 0, 0, 1, 1),
        ],
    )
    got = {(u, t): c for u, t, c in pairs(training_set.confidence(df), "confidence")}
    assert got == pytest.approx({("u1", "t1"): 10.0, ("u2", "t1"): 4.0, ("u3", "t1"): 2.05})


def test_id_mapping_is_contiguous_sorted_and_independent_of_row_order(spark):
    rows = [("b",), ("a",), ("c",), ("a",), (None,)]
    forward = spark.createDataFrame(rows, "user_id string")
    backward = spark.createDataFrame(rows[::-1], "user_id string").repartition(3)
    expected = {("a", 0), ("b", 1), ("c", 2)}
    assert {tuple(r) for r in training_set.id_mapping(forward, "user_id").collect()} == expected
    assert {tuple(r) for r in training_set.id_mapping(backward, "user_id").collect()} == expected


def test_holdout_keeps_each_users_last_fifth_of_plays_by_time(spark):
    rows = [("u10", f"t{h}", h) for h in (5, 0, 9, 1, 8, 2, 7, 3, 6, 4)]  # 10 plays, shuffled
    rows += [("u4", f"t{h}", h) for h in range(4)]  # 4 plays: floor(0.8) = 0 held out
    rows += [("u5", "a", 1), ("u5", "b", 2), ("u5", "c", 3), ("u5", "x", 4), ("u5", "y", 4)]
    training, held = training_set.chronological_holdout(listens(spark, rows))
    # u5's last two plays share a time: the later event id ("y", e018) counts as last.
    assert pairs(held) == {("u10", "t9"), ("u10", "t8"), ("u5", "y")}
    assert training.count() + held.count() == len(rows)
    assert pairs(training) & pairs(held) == set()
    with pytest.raises(ValueError):
        training_set.chronological_holdout(listens(spark, rows), fraction=1.0)


def test_split_counts_training_plays_only_and_never_leaks_a_held_out_track(spark):
    # u1: t1 at hours 0-3, then t2 at hour 4 (the last of 5 plays: held out); u1 was
    # recommended t2 and liked it.
    plays = listens(spark, [("u1", "t1", h) for h in range(4)] + [("u1", "t2", 4)])
    counts = interactions(
        spark,
        [
            ("u1", "t1", 4, 240_000, 1, 1, 0, 0, 0),
            ("u1", "t2", 1, 60_000, 1, 1, 0, 1, 0),
            ("u1", "t3", 0, 0, 0, 0, 0, 1, 0),  # liked, never played: kept
        ],
    )
    split = training_set.holdout_split(counts, plays)
    got = {(u, t): c for u, t, c in pairs(split.training, "confidence")}
    # t1: 4 plays + 4 minutes * 0.1 + 2 * 1 recommended-and-played; nothing of t2.
    assert got == pytest.approx({("u1", "t1"): 6.4, ("u1", "t3"): 4.0})
    assert pairs(split.relevant) == {("u1", "t2")}


def test_validation_holds_out_each_users_last_plays_like_the_test_split(spark):
    # u-early's history ends long before u-late's begins: a global time cut would give
    # u-early nothing to validate on.
    rows = [("u-early", f"e{h}", h) for h in range(10)]
    rows += [("u-late", f"l{h}", 1000 + h) for h in range(10)]
    counts = interactions(spark, [(u, t, 1, 60_000, 0, 0, 0, 0, 0) for u, t, _ in rows])
    outer = training_set.holdout_split(counts, listens(spark, rows))
    validation = training_set.validation_split(outer)
    # Of each user's 8 training plays, the last floor(8 * 0.2) = 1 validates.
    assert pairs(validation.relevant) == {("u-early", "e7"), ("u-late", "l7")}
    assert pairs(outer.relevant) == {
        ("u-early", "e8"),
        ("u-early", "e9"),
        ("u-late", "l8"),
        ("u-late", "l9"),
    }


def test_a_held_out_replay_of_a_training_track_is_not_relevant(spark):
    rows = [("u1", "t1", 0), ("u1", "t2", 1), ("u1", "t3", 2), ("u1", "t4", 3), ("u1", "t1", 4)]
    counts = interactions(
        spark,
        [("u1", t, n, 0, 0, 0, 0, 0, 0) for t, n in (("t1", 2), ("t2", 1), ("t3", 1), ("t4", 1))],
    )
    split = training_set.holdout_split(counts, listens(spark, rows))
    assert pairs(split.relevant) == set()
    # The replay is held out: t1 keeps one play of a minute (1 + 0.1).
    got = {(u, t): c for u, t, c in pairs(split.training, "confidence")}
    assert got[("u1", "t1")] == pytest.approx(1.1)


def test_mllib_user_vectors_are_what_fold_in_solves(spark):
    """MLlib updates users last in each iteration, so folding a trained user back in from
    the final item factors must give that user's trained vector: the Spark-free fold-in
    solves the same equations as MLlib, turned-down pairs (negative) included."""
    rng = np.random.default_rng(5)
    rows = [
        (f"u{u}", f"t{t}", float(rng.integers(1, 5)))
        for u in range(12)
        for t in rng.choice(20, size=6, replace=False)
    ]
    played = {(u, t) for u, t, _ in rows}
    unplayed = {u: [f"t{t}" for t in range(20) if (u, f"t{t}") not in played] for u in ("u0", "u7")}
    turned_down = [
        ("u0", unplayed["u0"][0], -3.0),
        ("u7", unplayed["u7"][0], -1.0),
        ("u7", unplayed["u7"][1], 0.0),
    ]
    training = spark.createDataFrame(
        rows + turned_down, "user_id string, track_id string, confidence double"
    )
    params = AlsParams(rank=3, reg_param=0.05, alpha=2.0, max_iter=4, negatives=True)
    model = als.train(training, params)
    assert model.user_ids == sorted({u for u, _, _ in rows})
    assert model.item_factors.shape == (20, 3)
    prefs = {t: c for u, t, c in rows if u == "u3"}
    assert model.fold_in(prefs) == pytest.approx(
        model.user_factors[model.user_index["u3"]], rel=1e-3, abs=1e-4
    )
    for user in ("u0", "u7"):
        trained = model.user_factors[model.user_index[user]]
        # What serving solves for a known user: their stored row, negatives and all.
        items, values = model.seen.row(model.user_index[user])
        assert model.refit(items, values, {}) == pytest.approx(trained, rel=1e-3, abs=1e-4)
    assert any(model.seen.row(model.user_index["u0"])[1] < 0)
    # Lists leave out the user's training tracks, turned-down ones too.
    lists = als.known_user_lists(model, ["u0", "nobody"], k=20)
    assert set(lists) == {"u0"}
    assert not set(lists["u0"]) & {t for u, t, _ in rows + turned_down if u == "u0"}
    assert len(lists["u0"]) == 20 - 6 - len([r for r in turned_down if r[0] == "u0"])


def test_ratings_scale_decay_and_teach_turned_down_pairs_as_preference_0(spark):
    counts = interactions(
        spark,
        [
            # 2 plays of a minute, an hour and 180 days before the last play: 2.2
            ("u1", "old", 2, 120_000, 0, 0, 0, 0, 0),
            # one play of a minute at the last play: 1.1
            ("u1", "new", 1, 60_000, 0, 0, 0, 0, 0),
            # skipped twice, never played: turned down, weight 2
            ("u1", "skipped", 0, 0, 1, 0, 2, 0, 0),
            # a play cancelled by a skip: turned down at 0, weight one play's
            ("u1", "cancelled", 1, 0, 0, 0, 1, 0, 0),
            # shown only: nothing to keep out
            ("u1", "shown", 0, 0, 1, 0, 0, 0, 0),
        ],
    )
    plays = listens(
        spark, [("u1", "old", 0), ("u1", "old", 1), ("u1", "new", 180 * 24), ("u1", "cancelled", 0)]
    )
    plays = plays.withColumn(
        "ms_played", F.when(plays.track_id == "cancelled", 0).otherwise(plays.ms_played)
    )

    def rated(**options):
        return {
            t: c
            for _, t, c in pairs(
                training_set.ratings(counts, AlsParams(**options), plays), "confidence"
            )
        }

    assert rated() == pytest.approx({"old": 2.2, "new": 1.1, "skipped": 0.0, "cancelled": 0.0})
    assert rated(scaling="log") == pytest.approx(
        {"old": np.log1p(2.2), "new": np.log1p(1.1), "skipped": 0.0, "cancelled": 0.0}
    )
    assert rated(negatives=True) == pytest.approx(
        {"old": 2.2, "new": 1.1, "skipped": -2.0, "cancelled": -1.0}
    )
    # A 90-day half-life: the old plays (180 days and an hour before) weigh about a quarter.
    decayed = rated(half_life_days=90.0)
    assert decayed["new"] == pytest.approx(1.1)
    assert decayed["old"] == pytest.approx(2.2 * 0.25, rel=1e-3)
    with pytest.raises(ValueError, match="give the listens"):
        training_set.ratings(counts, AlsParams(half_life_days=90.0))


def test_als_checkpoints_its_lineage_on_local_disk_in_local_mode(spark, settings):
    """The checkpoint directory is the SparkContext's: in local mode it must outlive any
    one lake's buckets, or every later fit of the session fails to checkpoint."""
    als.cut_lineage(spark, settings)
    directory = spark.sparkContext.getCheckpointDir()
    assert directory.startswith("file:") and "tunelake-als-checkpoints" in directory
    rows = [(f"u{u}", f"t{(u + i) % 9}", 1.0 + i) for u in range(6) for i in range(3)]
    training = spark.createDataFrame(rows, "user_id string, track_id string, confidence double")
    # 25 iterations: the lineage is cut twice (every 10).
    model = als.train(training, AlsParams(rank=2, reg_param=0.1, alpha=1.0, max_iter=25))
    assert model.user_factors.shape == (6, 2)
