"""The feedback loop: what a user does with a served list changes their next list.

A user who skips and dislikes everything recommended to them (tracks of the taste they
played) and plays tracks of another taste instead gets, after retraining, a list without
what they turned down and leaning to the other taste.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ml import als, training_set
from ml.model import AlsModel, AlsParams
from tests.unit.test_ml_training_set import interactions

PARAMS = AlsParams(rank=8, reg_param=0.1, alpha=10.0, max_iter=10)
GENRE_A = [f"a{i:02d}" for i in range(20)]
GENRE_B = [f"b{i:02d}" for i in range(20)]
USER = "u-switcher"


def _history() -> list[tuple]:
    """Thirty fans of each genre, and the user, who played eight tracks of genre A."""
    rng = np.random.default_rng(5)
    rows = []
    for fans, genre in (("fan-a", GENRE_A), ("fan-b", GENRE_B)):
        for n in range(30):
            for track in rng.choice(genre, size=10, replace=False):
                plays = int(rng.integers(1, 6))
                rows.append((f"{fans}-{n}", str(track), plays, plays * 180_000, 0, 0, 0, 0, 0))
    rows += [(USER, track, 3, 540_000, 0, 0, 0, 0, 0) for track in GENRE_A[:8]]
    return rows


def _train(spark, rows, params: AlsParams) -> AlsModel:
    return als.train(training_set.ratings(interactions(spark, rows), params), params)


def _mean_rank_of_b(model: AlsModel) -> float:
    """The mean position of genre B's tracks in the user's full ranking (0: the top)."""
    scores = model.item_factors @ model.user_factors[model.user_index[USER]]
    order = [model.item_ids[i] for i in np.argsort(-scores)]
    return float(np.mean([order.index(track) for track in GENRE_B]))


@pytest.mark.parametrize("negatives", [False, True], ids=["kept-out", "taught"])
def test_skips_dislikes_and_other_plays_move_the_next_list(spark, negatives):
    params = replace(PARAMS, negatives=negatives)
    history = _history()
    before = _train(spark, history, params)
    served = [track for track, _ in before.recommend(USER, 10)]
    assert sum(track in GENRE_A for track in served) >= 8  # the user's taste so far

    # The user skips and dislikes every served track, then plays six tracks of genre B.
    reactions = [(USER, track, 0, 0, 1, 0, 1, 0, 1) for track in served]
    other_plays = [(USER, track, 4, 800_000, 0, 0, 0, 0, 0) for track in GENRE_B[:6]]
    after = _train(spark, history + reactions + other_plays, params)
    served_after = [track for track, _ in after.recommend(USER, 10)]

    assert not set(served) & set(served_after), "a turned-down track was served again"
    assert sum(t in GENRE_B for t in served_after) > sum(t in GENRE_B for t in served)
    # Not only the exclusions: the user's vector itself moved toward genre B.
    assert _mean_rank_of_b(after) < _mean_rank_of_b(before)


def test_rejected_pairs_are_turned_down_ones_not_outweighed(spark):
    df = interactions(
        spark,
        [
            ("u", "skipped", 0, 0, 1, 0, 1, 0, 0),
            ("u", "disliked-after-play", 1, 60_000, 0, 0, 0, 0, 1),
            ("u", "skipped-once-loved", 3, 600_000, 1, 1, 1, 1, 0),
            ("u", "shown-only", 0, 0, 1, 0, 0, 0, 0),
        ],
    )
    assert {r.track_id for r in training_set.rejected(df).collect()} == {
        "skipped",
        "disliked-after-play",
    }
