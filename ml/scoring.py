"""Scoring with ALS factors, Spark-free (numpy only): training evaluates with it and the
service serves with it.

- ``top_k``: the best ``k`` items by dot product, excluding given items (what the user
  already played);
- ``fold_in``: the vector of a user the model was not trained on, from the item factors
  and that user's interactions, solved exactly as MLlib's implicit ALS solves a user.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Users scored in one matrix product: 1024 x 50k float32 scores is 200 MB at most.
BATCH_USERS = 1024


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | Sequence[int] = ()) -> np.ndarray:
    """Indices of the ``k`` highest ``scores``, best first, leaving out ``exclude``; fewer
    than ``k`` when fewer items remain. Ties go to the lower index."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    excluded = np.unique(np.asarray(exclude, dtype=np.int64))
    scores[excluded] = -np.inf
    available = scores.size - excluded.size
    k = min(k, available)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    # Negate and sort stably so equal scores keep index order.
    candidates = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    best = candidates[np.lexsort((candidates, -scores[candidates]))]
    return best[:k].astype(np.int64)


def recommend(
    user_vector: np.ndarray,
    item_factors: np.ndarray,
    k: int,
    exclude: np.ndarray | Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(item indices, scores) of one user's top ``k`` by dot product, excluding ``exclude``."""
    # In the item matrix's own precision: a float64 vector would upcast (copy) the matrix.
    scores = item_factors @ np.asarray(user_vector, dtype=item_factors.dtype)
    best = top_k(scores, k, exclude)
    return best, scores[best]


def recommend_many(
    user_vectors: np.ndarray,
    item_factors: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Top-``k`` item indices for every row of ``user_vectors`` (``exclude[i]``: the items
    to leave out for row ``i``), scored a batch of users at a time."""
    if len(exclude) != len(user_vectors):
        raise ValueError(f"{len(user_vectors)} users but {len(exclude)} exclusion lists")
    lists = []
    for start in range(0, len(user_vectors), BATCH_USERS):
        scores = user_vectors[start : start + BATCH_USERS] @ item_factors.T
        lists.extend(top_k(row, k, exclude[start + i]) for i, row in enumerate(scores))
    return lists


def gramian(item_factors: np.ndarray) -> np.ndarray:
    """``Y^T Y`` of the item factors: computed once per model, shared by every fold-in."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def fold_in(
    item_factors: np.ndarray,
    items: np.ndarray | Sequence[int],
    preferences: np.ndarray | Sequence[float],
    alpha: float,
    reg_param: float,
    yty: np.ndarray | None = None,
) -> np.ndarray:
    """The user vector implicit ALS gives a user with ``preferences`` (values ``r``, as fed
    to training) for ``items``, with the item factors held fixed.

    MLlib's implicit ALS (Hu, Koren, Volinsky 2008, with its regularisation scaled by the
    user's count ``n`` of positive preferences) weighs each pair by ``c_i = 1 + alpha *
    |r_i|``, with preference 1 where ``r_i > 0`` and 0 otherwise, and solves::

        (Y^T Y + sum_i alpha |r_i| y_i y_i^T + reg_param * n * I) x = sum_{r_i > 0} c_i y_i

    A pair at 0 weighs nothing. A user with no positive preference gets the zero vector
    (scores every item 0).
    """
    items = np.asarray(items, dtype=np.int64)
    r = np.asarray(preferences, dtype=np.float64)
    if items.shape != r.shape:
        raise ValueError(f"{items.size} items but {r.size} preferences")
    weighed = r != 0
    items, r = items[weighed], r[weighed]
    positive = r > 0
    rank = item_factors.shape[1]
    if not positive.any():
        return np.zeros(rank, dtype=np.float64)
    # Only the user's rows are converted: the item matrix itself is never copied per call.
    yi = np.asarray(item_factors[items], dtype=np.float64)
    c1 = alpha * np.abs(r)
    a = (gramian(item_factors) if yty is None else yty) + (yi * c1[:, None]).T @ yi
    a += reg_param * np.count_nonzero(positive) * np.eye(rank)
    b = ((1.0 + c1[positive])[:, None] * yi[positive]).sum(axis=0)
    return np.linalg.solve(a, b)
