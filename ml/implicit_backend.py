"""Single-machine implicit ALS with the ``implicit`` package, behind ``ml.als.train``'s
interface: (user_id, track_id, confidence) -> ``AlsModel``, so evaluation, the registry
and serving take its models unchanged. For data that fits one machine; ``make bench-ml``
compares it with Spark MLlib on the same split.

How ``AlsParams`` (MLlib's meaning) map onto ``implicit``:

- **confidence**: MLlib weighs a pair with raw preference ``r`` by ``c = 1 + alpha * |r|``
  (preference 1 when ``r > 0``, else 0). ``implicit`` takes the matrix value as ``c``
  itself, multiplied by its own ``alpha`` first (negative values: preference 0, weight
  ``|value|``). So the matrix holds ``sign(r) * (1 + params.alpha * |r|)`` and implicit's
  ``alpha`` stays 1: both solve the same weighted least squares per user and item. Pairs
  with ``r == 0`` carry no weight in MLlib beyond the regularisation count and are left out.
- **regularisation**: MLlib adds ``reg_param * n`` to each user's (item's) system, ``n``
  being that user's (item's) positive pairs; ``implicit`` adds one constant ``lambda`` on
  both sides. Scores are unchanged by scaling user vectors by ``s`` and item vectors by
  ``1 / s``, and the sum ``a * s^2 |X|^2 + b / s^2 |Y|^2`` is smallest at
  ``2 sqrt(a b) |X| |Y|``: only the product of the two sides' weights matters. So
  ``lambda = reg_param * sqrt(mean n per user * mean n per item)
  = reg_param * positives / sqrt(users * items)``: MLlib's average penalty. What does not
  carry over is its variation: MLlib regularises heavy users and popular items more than
  ``lambda``, light ones less. ``make bench-ml`` measures what that costs in NDCG@10.
- **rank, max_iter**: ``factors`` and ``iterations``. ``implicit`` solves each row with
  three conjugate-gradient steps warm-started from the previous iteration (MLlib: an exact
  Cholesky solve), and starts from different random factors, so results differ in detail.

Threads: ``implicit`` parallelises over rows itself; BLAS is held to one thread while it
fits (what ``implicit`` asks for: OpenBLAS threads inside its threads slow it severalfold).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ml.model import AlsModel, AlsParams, Interactions

log = logging.getLogger(__name__)

SEED = 42


def confidence_matrix(
    n_users: int,
    n_items: int,
    users: np.ndarray,
    items: np.ndarray,
    preferences: np.ndarray,
    alpha: float,
) -> sp.csr_matrix:
    """users x items CSR of ``sign(r) * (1 + alpha * |r|)``, pairs with ``r == 0`` left out."""
    r = np.asarray(preferences, dtype=np.float64)
    kept = r != 0
    values = np.sign(r[kept]) * (1.0 + alpha * np.abs(r[kept]))
    return sp.csr_matrix(
        (values.astype(np.float32), (np.asarray(users)[kept], np.asarray(items)[kept])),
        shape=(n_users, n_items),
    )


def regularization(params: AlsParams, n_users: int, n_items: int, positives: int) -> float:
    """implicit's constant ``lambda`` for MLlib's count-scaled ``reg_param`` (see above)."""
    return params.reg_param * positives / math.sqrt(n_users * n_items)


def fit(
    user_ids: Sequence[str],
    track_ids: Sequence[str],
    preferences: np.ndarray,
    params: AlsParams,
    seed: int = SEED,
    threads: int = 0,
) -> AlsModel:
    """Fit on one (user, track, raw preference) per pair (as ``training_set.confidence``
    gives); ids are numbered in sorted order, as ``training_set.id_mapping`` numbers them.
    ``threads``: 0 uses every core."""
    # A dev dependency (the benchmark's), with threadpoolctl: imported when used.
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    if len(user_ids) == 0:
        raise ValueError("no training interactions: nothing to train on")
    users, user_index = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
    items, item_index = np.unique(np.asarray(track_ids, dtype=str), return_inverse=True)
    r = np.asarray(preferences, dtype=np.float64)
    matrix = confidence_matrix(len(users), len(items), user_index, item_index, r, params.alpha)
    lam = regularization(params, len(users), len(items), int((r > 0).sum()))
    started = time.monotonic()
    with threadpool_limits(limits=1, user_api="blas"):
        als = AlternatingLeastSquares(
            factors=params.rank,
            regularization=lam,
            alpha=1.0,
            iterations=params.max_iter,
            num_threads=threads,
            random_state=seed,
        )
        als.fit(matrix, show_progress=False)
    log.info(
        "trained implicit ALS %s (lambda %.3f) on %d pairs (%d users x %d tracks) in %.1f s",
        params,
        lam,
        matrix.nnz,
        len(users),
        len(items),
        time.monotonic() - started,
    )
    return AlsModel(
        params=params,
        user_ids=users.tolist(),
        item_ids=items.tolist(),
        user_factors=np.ascontiguousarray(als.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(als.item_factors, dtype=np.float32),
        seen=Interactions.from_pairs(len(users), user_index, item_index, r),
    )


def train(training: DataFrame, params: AlsParams, seed: int = SEED, threads: int = 0) -> AlsModel:
    """``ml.als.train``'s interface: ``training`` (user_id, track_id, confidence) collected
    to the driver and fitted there."""
    table = training.select(
        "user_id", "track_id", F.col("confidence").cast("double").alias("confidence")
    ).toArrow()
    return fit(
        table.column("user_id").to_pylist(),
        table.column("track_id").to_pylist(),
        table.column("confidence").to_numpy(),
        params,
        seed,
        threads,
    )
