"""The implicit-package ALS backend: MLlib's parameters mapped, and a model that serves."""

from __future__ import annotations

import numpy as np
import pytest

from ml import implicit_backend
from ml.model import AlsParams

# Rank 2 for two planted genres: more factors fit individual co-occurrences of so few plays.
PARAMS = AlsParams(rank=2, reg_param=0.1, alpha=10.0, max_iter=10)


def planted(users: int = 40, per_genre: int = 10, plays: int = 5, seed: int = 0):
    """Two genres of tracks; even users play only genre A, odd users only genre B (a few
    random tracks of it each), in shuffled user order, so the numbering is tested."""
    rng = np.random.default_rng(seed)
    genre = {g: [f"{name}-{i:02d}" for i in range(per_genre)] for g, name in enumerate("ab")}
    rows = []
    for u in rng.permutation(users):
        for track in rng.choice(genre[u % 2], size=plays, replace=False):
            rows.append((f"user-{u:03d}", str(track), float(rng.integers(1, 5))))
    return rows, genre


def test_model_ranks_the_planted_genre_first_and_has_the_right_shapes():
    rows, genre = planted()
    users, tracks, prefs = zip(*rows, strict=True)
    model = implicit_backend.fit(users, tracks, np.array(prefs), PARAMS, threads=2)

    assert model.user_ids == sorted(set(users)) and len(model.user_ids) == 40
    assert model.item_ids == sorted(set(tracks)) and len(model.item_ids) == 20
    assert model.user_factors.shape == (40, 2) and model.user_factors.dtype == np.float32
    assert model.item_factors.shape == (20, 2) and model.item_factors.dtype == np.float32
    assert model.params == PARAMS
    # seen holds every training pair under the model's own numbering, raw preference kept.
    for user, track, pref in rows:
        items, values = model.seen.row(model.user_index[user])
        assert values[list(items).index(model.item_index[track])] == pref
    assert model.seen.indices.size == len(rows)

    for user in model.user_ids:
        played = {model.item_ids[i] for i in model.seen.row(model.user_index[user])[0]}
        liked = set(genre[int(user[-3:]) % 2])
        picks = [track for track, _ in model.recommend(user, 5)]
        # Every unplayed track of the user's genre (5 of 10) ranks above the other genre.
        assert set(picks) == liked - played, user


def test_confidence_and_regularisation_follow_mllib():
    matrix = implicit_backend.confidence_matrix(
        2, 3, np.array([0, 0, 1]), np.array([0, 2, 1]), np.array([2.0, -1.0, 0.0]), alpha=10.0
    )
    # 1 + alpha * r for a positive r; a negative r keeps preference 0 with weight 1 + alpha|r|
    # (implicit's sign convention); r == 0 is left out.
    assert matrix.toarray().tolist() == [[21.0, 0.0, -11.0], [0.0, 0.0, 0.0]]
    # reg_param times the geometric mean of each side's positives per pair: users with 3
    # and 1 pairs average (3 * 3 + 1 * 1) / 4 = 2.5 per pair; items with 2, 1, 1: 1.5.
    lam = implicit_backend.regularization(PARAMS, np.array([3, 1]), np.array([2, 1, 1]))
    assert lam == pytest.approx(0.1 * (2.5 * 1.5) ** 0.5)
    # Equal counts: every pair pays the same, and lambda is MLlib's reg_param * n.
    assert implicit_backend.regularization(PARAMS, np.full(4, 5), np.full(2, 10)) == pytest.approx(
        0.1 * (5 * 10) ** 0.5
    )


def test_ids_are_numbered_in_byte_order_as_spark_numbers_them():
    ids, rows = implicit_backend.numbered(["b", "é", "a", "b", "Z"])
    assert ids == ["Z", "a", "b", "é"]
    assert rows.tolist() == [2, 3, 1, 2, 0]


def test_train_takes_the_spark_training_set(spark):
    rows, _ = planted(users=6, plays=3)
    training = spark.createDataFrame(rows, "user_id string, track_id string, confidence double")
    model = implicit_backend.train(training, PARAMS)
    assert model.user_ids == sorted({u for u, _, _ in rows})
    assert model.seen.indices.size == len(rows)
