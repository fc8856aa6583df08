"""The promotion gate: a paired bootstrap over users, a minimum of users, and the reason.

The last two tests are the gate on real ALS models (Spark, tiny data): a candidate that
differs from the current model only by its seed is refused with its interval, and a
clearly better one is promoted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ml import als, evaluation, training_set
from ml.gate import Comparison, decide, paired_bootstrap
from ml.model import AlsParams
from tests.unit.test_ml_training_set import interactions

USERS = [f"u{i:03d}" for i in range(200)]


def _comparison(candidate: np.ndarray, baseline: np.ndarray, name="current") -> Comparison:
    users = USERS[: len(candidate)]
    return Comparison(
        name,
        "test plays",
        dict(zip(users, candidate, strict=True)),
        dict(zip(users, baseline, strict=True)),
    )


def test_the_same_scores_are_no_gain():
    scores = np.random.default_rng(1).uniform(0, 1, 200)
    interval = paired_bootstrap(scores, scores.copy())
    assert (interval.gain, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not decide([_comparison(scores, scores.copy())], min_users=30).promote


def test_a_consistent_gain_is_promoted_and_its_interval_recorded():
    rng = np.random.default_rng(2)
    baseline = rng.uniform(0, 0.5, 200)
    candidate = baseline + rng.normal(0.05, 0.05, 200)
    decision = decide([_comparison(candidate, baseline)], min_users=30)
    assert decision.promote, decision.reason
    recorded = decision.intervals["current"]
    assert recorded["users"] == 200 and recorded["how"] == "test plays"
    assert 0 < recorded["gain_low"] < recorded["gain"] < recorded["gain_high"]
    assert "95% interval [+0.0" in decision.reason


def test_a_gain_within_the_noise_is_refused_naming_the_baseline_and_interval():
    rng = np.random.default_rng(3)
    # Two draws of the same quality: the candidate's mean happens to be a little higher.
    baseline, candidate = rng.uniform(0, 0.4, 200), rng.uniform(0, 0.4, 200) + 0.005
    decision = decide([_comparison(candidate, baseline)], min_users=30)
    assert not decision.promote
    low, high = (
        decision.intervals["current"]["gain_low"],
        decision.intervals["current"]["gain_high"],
    )
    assert low < 0 < high
    assert decision.reason.startswith("not shown better than current")


def test_too_few_users_refuse_even_a_clear_gain():
    baseline = np.zeros(10)
    decision = decide([_comparison(baseline + 0.5, baseline)], min_users=30)
    assert not decision.promote
    assert "fewer than the 30 users the gate needs" in decision.reason


def test_every_baseline_must_be_beaten():
    rng = np.random.default_rng(4)
    low = rng.uniform(0, 0.1, 100)
    better = low + 0.2
    decision = decide(
        [_comparison(better, low, "most_popular"), _comparison(better, better.copy())],
        min_users=30,
    )
    assert not decision.promote
    assert "not shown better than current" in decision.reason
    with pytest.raises(ValueError):
        decide([], min_users=1)


# --- on real models ----------------------------------------------------------------------

PARAMS = AlsParams(rank=8, reg_param=0.1, alpha=10.0, max_iter=8)
GENRES = {g: [f"{g}{i:02d}" for i in range(25)] for g in "abcd"}


def _taste_split(spark) -> training_set.Split:
    """120 users, each a fan of one genre, playing 12 of its tracks: the last 20% of each
    user's plays are held out."""
    from datetime import UTC, datetime, timedelta

    rng = np.random.default_rng(11)
    listens, counts = [], {}
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(120):
        user, genre = f"fan-{n:03d}", "abcd"[n % 4]
        for i, track in enumerate(rng.choice(GENRES[genre], size=12, replace=False)):
            listens.append(
                (f"e-{n}-{i}", user, str(track), start + timedelta(hours=n + i), 180_000)
            )
            counts[(user, str(track))] = 1
    listen_df = spark.createDataFrame(
        listens,
        "event_id string, user_id string, track_id string, played_at timestamp, ms_played long",
    )
    rows = [(u, t, c, c * 180_000, 0, 0, 0, 0, 0) for (u, t), c in counts.items()]
    return training_set.holdout_split(interactions(spark, rows), listen_df)


def _per_user_ndcg(model, relevant) -> dict[str, float]:
    return evaluation.ndcg_by_user(als.known_user_lists(model, relevant), relevant)


@pytest.fixture(scope="module")
def split_and_relevant(spark):
    split = _taste_split(spark)
    return split, als.relevant_sets(split.relevant)


def test_a_candidate_only_differing_by_seed_is_refused_with_its_interval(split_and_relevant):
    split, relevant = split_and_relevant
    current = als.train(split.training, PARAMS, seed=1)
    candidate = als.train(split.training, PARAMS, seed=2)
    decision = decide(
        [
            Comparison(
                "current",
                "same data, another seed",
                _per_user_ndcg(candidate, relevant),
                _per_user_ndcg(current, relevant),
            )
        ],
        min_users=30,
    )
    assert not decision.promote, decision.reason
    interval = decision.intervals["current"]
    assert interval["gain_low"] <= 0 <= interval["gain_high"], interval


def test_a_clearly_better_candidate_is_promoted(split_and_relevant):
    split, relevant = split_and_relevant
    candidate = als.train(split.training, PARAMS)
    # The current model knows the same users but with one latent factor and one sweep:
    # it cannot tell four genres apart.
    weak = als.train(split.training, AlsParams(rank=1, reg_param=0.1, alpha=10.0, max_iter=1))
    decision = decide(
        [
            Comparison(
                "current",
                "same data, a weaker configuration",
                _per_user_ndcg(candidate, relevant),
                _per_user_ndcg(weak, relevant),
            )
        ],
        min_users=30,
    )
    assert decision.promote, decision.reason
    assert decision.intervals["current"]["gain_low"] > 0


def test_the_search_grid_starts_at_a_proven_point_then_spreads_every_option():
    grid = als.DEFAULT_SEARCH_SPACE.grid()
    assert grid[0] == als.SEARCH_START
    assert len(set(grid)) == len(grid) == 2 * 4 * 3 * 2 * 2 * 2 * 2
    # Ten trials already try both values of every preference option.
    early = grid[:10]
    assert {p.scaling for p in early} == {"linear", "log"}
    assert {p.half_life_days for p in early} == {0.0, 90.0}
    assert {p.negatives for p in early} == {False, True}


def test_the_search_climbs_from_its_best_point_then_walks_the_rest_of_the_grid():
    space = als.SearchSpace(ranks=(16, 48), reg_params=(0.1, 1.0), alphas=(1.0,), max_iters=(10,))
    grid = space.grid()
    start = grid[0]
    assert space.next_trial(grid, {}) == start
    first_step = space.next_trial(grid, {start: 0.2})
    assert first_step == replace(start, rank=48)  # one option away, the first option first

    better = {start: 0.2, first_step: 0.3}
    # The next trial moves one option away from the better point, not from the start.
    assert space.next_trial(grid, better) in space.neighbours(first_step)
    assert space.next_trial(grid, better) not in better

    scores = dict.fromkeys([start, *space.neighbours(start)], 0.1) | {start: 0.2}
    # Every neighbour of the best tried and none better: the grid's next untried point.
    assert space.next_trial(grid, scores) == next(p for p in grid if p not in scores)
    assert space.next_trial(grid, dict.fromkeys(grid, 0.1)) is None
    assert len(space.neighbours(start)) == 1 + 1 + 1 + 1 + 1  # rank, reg and 3 options
