"""Spark-free scoring: top-k with exclusions, fold-in, and the model's recommend()."""

from __future__ import annotations

import numpy as np
import pytest

from ml.model import DEFAULT_WEIGHTS, AlsModel
from ml.scoring import fold_in, recommend_many, top_k
from tests.support import two_taste_model


def test_top_k_orders_by_score_and_leaves_out_excluded_items():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 3, exclude=[1, 2]).tolist() == [3, 4, 0]
    # Fewer items left than k: all of them, never an excluded one.
    assert top_k(scores, 10, exclude=[0, 1, 2]).tolist() == [3, 4]
    assert top_k(scores, 3, exclude=range(5)).tolist() == []
    # Ties go to the lower index.
    assert top_k(np.array([1.0, 2.0, 2.0, 2.0]), 2).tolist() == [1, 2]


def test_recommend_many_matches_one_user_at_a_time():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(5, 3)), rng.normal(size=(40, 3))
    exclude = [np.array([i, i + 1]) for i in range(5)]
    lists = recommend_many(users, items, 4, exclude)
    for u in range(5):
        assert lists[u].tolist() == top_k(items @ users[u], 4, exclude[u]).tolist()
        assert not set(lists[u]) & set(exclude[u])


def test_fold_in_solves_the_weighted_least_squares_over_every_item():
    """MLlib's implicit objective, written out densely: every item has confidence 1 and
    preference 0 unless the user has it; regularisation scaled by the user's item count."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 4))
    items, r = np.array([2, 7, 11]), np.array([3.0, 1.0, 0.5])
    alpha, reg = 5.0, 0.1
    c = np.ones(30)
    c[items] += alpha * r
    p = np.zeros(30)
    p[items] = 1.0
    expected = np.linalg.solve(y.T @ (c[:, None] * y) + reg * len(items) * np.eye(4), y.T @ (c * p))
    assert fold_in(y, items, r, alpha, reg) == pytest.approx(expected)
    # A pair at 0 weighs nothing; a negative one is preference 0 with confidence
    # 1 + alpha * |r| (MLlib's negative ratings), outside the regularisation count.
    c[5] += alpha * 2.0
    turned_down = np.linalg.solve(
        y.T @ (c[:, None] * y) + reg * len(items) * np.eye(4), y.T @ (c * p)
    )
    with_skips = fold_in(y, np.append(items, [5, 9]), np.append(r, [-2.0, 0.0]), alpha, reg)
    assert with_skips == pytest.approx(turned_down)
    assert fold_in(y, [], [], alpha, reg).tolist() == [0.0] * 4
    assert fold_in(y, [5], [-2.0], alpha, reg).tolist() == [0.0] * 4


def test_model_recommends_unplayed_tracks_of_the_users_taste():
    model = two_taste_model()
    assert [t for t, _ in model.recommend("u-first", 2)] == ["t1", "t2"]
    # Listens since training are left out too.
    assert [t for t, _ in model.recommend("u-second", 2, recent={"t4": 1.0})] == ["t5", "t0"]


def test_a_known_users_list_moves_the_moment_they_listen():
    model = two_taste_model()
    # u-first likes the first taste; then plays the second taste a lot, since the model.
    before = [t for t, _ in model.recommend("u-first", 2)]
    after = [t for t, _ in model.recommend("u-first", 2, recent={"t3": 20.0, "t4": 20.0})]
    assert before == ["t1", "t2"]
    assert after == ["t5", "t1"]  # t5: the second taste's only unplayed track, now first
    # The refit is fold-in over training plus recent preferences: with nothing recent, it
    # is the solve of the user's own training row.
    items, values = model.seen.row(model.user_index["u-first"])
    assert model.refit(items, values, {}) == pytest.approx(
        fold_in(model.item_factors, items, values, model.params.alpha, model.params.reg_param)
    )


def test_unknown_user_is_folded_in_from_recent_listens():
    model = two_taste_model()
    assert model.recommend("u-new", 3) == []
    folded = [t for t, _ in model.recommend("u-new", 2, recent={"t3": 2.0, "t-unknown": 1.0})]
    assert folded == ["t4", "t5"]


def test_model_rejects_factors_that_do_not_match_its_ids():
    model = two_taste_model()
    with pytest.raises(ValueError, match="user factors"):
        AlsModel(
            model.params, ["u"], model.item_ids, model.user_factors, model.item_factors, model.seen
        )


def test_confidence_of_plain_numbers_is_the_training_formula():
    # The service scores listens since training with the same formula the training set
    # applies to Spark columns (tests/unit/test_ml_training_set.py has the same cases).
    assert DEFAULT_WEIGHTS.of(3, 600_000, recommended_and_played=1, likes=1) == pytest.approx(10.0)
    assert DEFAULT_WEIGHTS.of(2, 30_000, likes=1, dislikes=1) == pytest.approx(2.05)
    assert DEFAULT_WEIGHTS.of(1, 0, skips=1) == 0.0
