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
- **regularisation**: MLlib adds ``reg_param * n`` to the system of each user (item) with
  ``n`` positive pairs: its penalty ``reg_param * (sum_u n_u |x_u|^2 + sum_i n_i |y_i|^2)``
  charges every pair for its user's and its item's vector. ``implicit`` charges one
  constant ``lambda`` per vector. The constant is MLlib's ``reg_param * n`` averaged the
  way that penalty is paid, per pair (``sum n^2 / sum n``: heavy users and popular items,
  whose vectors are longest, count by their pairs), on each side; the two sides combine by
  their geometric mean, since scaling user vectors by ``s`` and item vectors by ``1 / s``
  leaves every score unchanged, so only the product of the two sides' weights matters. The
  plain per-vector mean (``reg_param * pairs / users``) regularised less than MLlib and
  scored 7% lower NDCG@10 in ``make bench-ml`` (docs/performance.md). What no constant
  carries over is MLlib's variation: heavy users and popular items regularised more than
  light ones.
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
import pyarrow as pa
import pyarrow.compute as pc
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


def regularization(params: AlsParams, user_pairs: np.ndarray, item_pairs: np.ndarray) -> float:
    """implicit's constant ``lambda`` for MLlib's count-scaled ``reg_param`` (see above), from
    the positive pairs of each user and of each item."""

    def per_pair_mean(counts: np.ndarray) -> float:
        counts = np.asarray(counts, dtype=np.float64)
        return float((counts**2).sum() / counts.sum())

    return params.reg_param * math.sqrt(per_pair_mean(user_pairs) * per_pair_mean(item_pairs))


def numbered(ids: Sequence[str] | pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """The distinct ids in sorted order (UTF-8 byte order, as ``training_set.id_mapping``
    numbers them in Spark) and each row's number among them. Arrow's dictionary encoding:
    sorting a few thousand distinct ids, not a string per row (np.unique took seconds)."""
    if isinstance(ids, pa.ChunkedArray):
        column = ids.combine_chunks()
    else:
        column = pa.array(ids, pa.string())
    encoded = pc.dictionary_encode(column)
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    rows = position[encoded.indices.to_numpy(zero_copy_only=False)]
    return encoded.dictionary.take(pa.array(order)).to_pylist(), rows


def fit(
    user_ids: Sequence[str] | pa.ChunkedArray,
    track_ids: Sequence[str] | pa.ChunkedArray,
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
    users, user_index = numbered(user_ids)
    items, item_index = numbered(track_ids)
    r = np.asarray(preferences, dtype=np.float64)
    matrix = confidence_matrix(len(users), len(items), user_index, item_index, r, params.alpha)
    positive = r > 0
    lam = regularization(
        params,
        np.bincount(user_index[positive], minlength=len(users)),
        np.bincount(item_index[positive], minlength=len(items)),
    )
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
        user_ids=users,
        item_ids=items,
        user_factors=np.ascontiguousarray(als.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(als.item_factors, dtype=np.float32),
        seen=Interactions.from_pairs(len(users), user_index, item_index, r),
    )


def train(training: DataFrame, params: AlsParams, seed: int = SEED, threads: int = 0) -> AlsModel:
    """``ml.als.train``'s interface: ``training`` (user_id, track_id, confidence) collected
    to the driver and fitted there; as there, only users and tracks with a positive
    preference get vectors."""
    positive = training.where(F.col("confidence") > 0)
    training = training.join(positive.select("user_id").distinct(), "user_id", "semi").join(
        positive.select("track_id").distinct(), "track_id", "semi"
    )
    table = training.select(
        "user_id", "track_id", F.col("confidence").cast("double").alias("confidence")
    ).toArrow()
    return fit(
        table.column("user_id"),
        table.column("track_id"),
        table.column("confidence").to_numpy(),
        params,
        seed,
        threads,
    )
