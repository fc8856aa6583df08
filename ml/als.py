"""Spark MLlib ALS on implicit feedback, and its hyper-parameter search.

``train``: (user_id, track_id, confidence) -> ``AlsModel`` (numpy factors, id mappings and
the training interactions). ``search``: the parameters with the best NDCG@10 on a
validation split, trying a small grid in a fixed order until a time budget runs out.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.ml.recommendation import ALS
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ml import evaluation
from ml.model import AlsModel, AlsParams, Interactions
from ml.scoring import recommend_many
from ml.training_set import Split, id_mapping
from tunelake.settings import Settings

log = logging.getLogger(__name__)

SEED = 42
K = evaluation.DEFAULT_K


def _ordered_ids(mapping: DataFrame, column: str) -> list[str]:
    table = mapping.orderBy("index").toArrow()
    return table.column(column).to_pylist()


def _factors(factors: DataFrame, n: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) rows as an n x rank array, row = id."""
    table = factors.toArrow()
    ids = table.column("id").to_numpy()
    features = pa.concat_arrays(table.column("features").chunks).flatten().to_numpy()
    matrix = np.zeros((n, rank), dtype=np.float32)
    matrix[ids] = features.reshape(len(ids), rank)
    return matrix


def train(training: DataFrame, params: AlsParams, seed: int = SEED) -> AlsModel:
    """Fit MLlib ALS (``implicitPrefs``) on ``training`` (user_id, track_id, confidence:
    ``training_set.ratings``). Users and tracks with a positive preference get vectors;
    every pair of theirs joins the model's ``seen`` (a pair at 0 weighs nothing, a
    negative one is preference 0 with confidence ``1 + alpha * |r|``)."""
    # Read four times below: computed once (unless the caller keeps it cached already).
    own_cache = not training.is_cached
    if own_cache:
        training = training.cache()
    positive = training.where(F.col("confidence") > 0)
    users = id_mapping(positive, "user_id").cache()
    items = id_mapping(positive, "track_id").cache()

    def numbered(pairs: DataFrame, rating: Column) -> DataFrame:
        """(user, item, rating): the pairs by ALS's integer ids (pairs of users or tracks
        without a positive preference drop out)."""
        return (
            pairs.join(users.withColumnRenamed("index", "user"), "user_id")
            .join(items.withColumnRenamed("index", "item"), "track_id")
            .select("user", "item", rating.cast("float").alias("rating"))
        )

    ratings = numbered(training, F.col("confidence")).cache()
    user_ids, item_ids = _ordered_ids(users, "user_id"), _ordered_ids(items, "track_id")
    if not user_ids:
        raise ValueError("no training interactions: nothing to train on")
    # A block per core: MLlib's default of 10 only adds scheduling on small data.
    blocks = max(1, ratings.sparkSession.sparkContext.defaultParallelism)
    als = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=True,
        coldStartStrategy="drop",
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        seed=seed,
    )
    started = time.monotonic()
    fitted = als.fit(ratings)
    pairs = ratings.toArrow()
    model = AlsModel(
        params=params,
        user_ids=user_ids,
        item_ids=item_ids,
        user_factors=_factors(fitted.userFactors, len(user_ids), params.rank),
        item_factors=_factors(fitted.itemFactors, len(item_ids), params.rank),
        seen=Interactions.from_pairs(
            len(user_ids),
            pairs.column("user").to_numpy(),
            pairs.column("item").to_numpy(),
            pairs.column("rating").to_numpy(),
        ),
    )
    log.info(
        "trained ALS %s on %d pairs (%d users x %d tracks) in %.1f s",
        params,
        len(pairs),
        len(user_ids),
        len(item_ids),
        time.monotonic() - started,
    )
    for df in (ratings, users, items, *([training] if own_cache else [])):
        df.unpersist()
    return model


def cut_lineage(spark: SparkSession, settings: Settings) -> None:
    """Give MLlib ALS a checkpoint directory: only with one does it cut its RDD lineage
    every 10 iterations. Without, 20 iterations on the demo's data failed to serialize
    their tasks (StackOverflowError). On a cluster it is on the object store (every
    executor reaches it); in local mode on local disk, which outlives any one lake (the
    directory is the SparkContext's, shared by every later fit in the process)."""
    if settings.is_local_spark:
        directory = Path(tempfile.gettempdir()) / "tunelake-als-checkpoints"
        directory.mkdir(exist_ok=True)
        spark.sparkContext.setCheckpointDir(str(directory))
    else:
        spark.sparkContext.setCheckpointDir(settings.checkpoint_path("als"))


def known_user_lists(model: AlsModel, users: Iterable[str], k: int = K) -> dict[str, list[str]]:
    """Top ``k`` of every user in ``users`` the model knows, leaving out their training
    tracks (users it does not know get no list)."""
    known = [u for u in users if u in model.user_index]
    rows = [model.user_index[u] for u in known]
    lists = _scored_lists(model, model.user_factors[rows], [model.seen.row(r)[0] for r in rows], k)
    return dict(zip(known, lists, strict=True))


def folded_in_lists(
    model: AlsModel, preferences: Mapping[str, Mapping[str, float]], k: int = K
) -> dict[str, list[str]]:
    """Top ``k`` of every user in ``preferences`` (user -> track -> confidence) with the
    user's vector folded in from those preferences, leaving those tracks out: how a model
    trained on other data ranks these users' next tracks."""
    users = list(preferences)
    vectors = np.array([model.fold_in(preferences[u]) for u in users]).reshape(
        len(users), model.params.rank
    )
    exclude = [
        np.array([model.item_index[t] for t in preferences[u] if t in model.item_index], dtype=int)
        for u in users
    ]
    return dict(zip(users, _scored_lists(model, vectors, exclude, k), strict=True))


def _scored_lists(
    model: AlsModel, vectors: np.ndarray, exclude: list[np.ndarray], k: int
) -> list[list[str]]:
    indices = recommend_many(vectors.astype(np.float64), model.item_factors, k, exclude)
    return [[model.item_ids[i] for i in row] for row in indices]


def relevant_sets(relevant: DataFrame) -> dict[str, set[str]]:
    """(user_id, track_id) rows as {user: set of tracks}."""
    table = relevant.select("user_id", "track_id").toArrow()
    sets: dict[str, set[str]] = {}
    for user, track in zip(
        table.column("user_id").to_pylist(), table.column("track_id").to_pylist(), strict=True
    ):
        sets.setdefault(user, set()).add(track)
    return sets


@dataclass(frozen=True)
class SearchSpace:
    """The grid: regularisation up to 3.0 (make bench-ml found NDCG@10 still rising at 10x
    the old top of 0.1), iterations beside rank and alpha, and the preference options
    (``AlsParams``: log scaling, a 90-day half-life, turned-down pairs as preference 0)."""

    ranks: tuple[int, ...] = (16, 48)
    reg_params: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0)
    alphas: tuple[float, ...] = (1.0, 10.0, 40.0)
    max_iters: tuple[int, ...] = (10, 20)
    scalings: tuple[str, ...] = ("linear", "log")
    half_lives_days: tuple[float, ...] = (0.0, 90.0)
    negatives: tuple[bool, ...] = (False, True)

    def _options(self) -> dict[str, tuple]:
        """Each ``AlsParams`` field and the values the space gives it."""
        return {
            "rank": self.ranks,
            "reg_param": self.reg_params,
            "alpha": self.alphas,
            "max_iter": self.max_iters,
            "scaling": self.scalings,
            "half_life_days": self.half_lives_days,
            "negatives": self.negatives,
        }

    def grid(self, seed: int = SEED) -> list[AlsParams]:
        """Every combination, in a fixed shuffled order after ``SEARCH_START`` (when the
        space holds it): a budget that stops the search early has still tried a spread of
        values, not one corner of the grid, and the shortest search a proven point."""
        options = self._options()
        combos = [
            AlsParams(**dict(zip(options, values, strict=True)))
            for values in itertools.product(*options.values())
        ]
        order = np.random.default_rng(seed).permutation(len(combos))
        shuffled = [combos[i] for i in order]
        first = [p for p in shuffled if p == SEARCH_START]
        return first + [p for p in shuffled if p != SEARCH_START]

    def neighbours(self, params: AlsParams) -> list[AlsParams]:
        """The points one option away from ``params``, option by option."""
        return [
            replace(params, **{field: value})
            for field, values in self._options().items()
            for value in values
            if value != getattr(params, field)
        ]

    def next_trial(
        self, grid: list[AlsParams], scores: Mapping[AlsParams, float]
    ) -> AlsParams | None:
        """What to try after ``scores``: an untried neighbour of the best point so far (a
        climb: a time box of a dozen trials goes where the scores rise, where a random
        dozen of the grid's 384 points rarely beat a good start), else the grid's next
        untried point; None once every point is tried."""
        if scores:
            best = max(scores, key=scores.__getitem__)
            climb = [p for p in self.neighbours(best) if p not in scores]
            if climb:
                return climb[0]
        return next((p for p in grid if p not in scores), None)


# The first trial of every search, so a budget that allows one trial still gets a sound
# model: the region both libraries' searches found best on generated data and MovieLens
# 100k in make bench-ml (docs/performance.md); the old grid's first point scored barely
# above most-popular there.
SEARCH_START = AlsParams(
    rank=16,
    reg_param=0.1,
    alpha=1.0,
    max_iter=10,
    scaling="log",
    half_life_days=90.0,
    negatives=True,
)


DEFAULT_SEARCH_SPACE = SearchSpace()


@dataclass(frozen=True)
class Trial:
    params: AlsParams
    ndcg: float
    seconds: float

    def to_dict(self) -> dict:
        return {"params": self.params.to_dict(), f"ndcg@{K}": self.ndcg, "seconds": self.seconds}


Trainer = Callable[[DataFrame, AlsParams, int], AlsModel]


def search(
    validation: Split,
    space: SearchSpace = DEFAULT_SEARCH_SPACE,
    budget_seconds: float = 300.0,
    seed: int = SEED,
    trainer: Trainer = train,
) -> tuple[AlsParams, list[Trial]]:
    """The best parameters by NDCG@10 on ``validation`` of the points tried (in
    ``SearchSpace.next_trial``'s order), and every trial. Stops
    starting trials once the next one (at the mean trial time so far) would end past
    ``budget_seconds``; the first trial always runs. ``trainer``: MLlib (``train``), or
    another library behind the same interface (``make bench-ml`` tunes ``implicit``)."""
    relevant = relevant_sets(validation.relevant)
    # One training set per preference option (scaling, decay, negatives), built once.
    ratings: dict[tuple, DataFrame] = {}
    started = time.monotonic()
    trials: list[Trial] = []
    grid = space.grid(seed)
    while (params := space.next_trial(grid, {t.params: t.ndcg for t in trials})) is not None:
        elapsed = time.monotonic() - started
        if trials and elapsed + elapsed / len(trials) > budget_seconds:
            log.info("search budget %.0f s reached after %d trials", budget_seconds, len(trials))
            break
        trial_started = time.monotonic()
        option = (params.scaling, params.half_life_days, params.negatives)
        if option not in ratings:
            ratings[option] = validation.ratings(params).cache()
        model = trainer(ratings[option], params, seed)
        ndcg = evaluation.ndcg_at_k(known_user_lists(model, relevant, K), relevant, K)
        trials.append(Trial(params, ndcg, time.monotonic() - trial_started))
        log.info("trial %s: ndcg@%d %.4f (%.1f s)", params, K, ndcg, trials[-1].seconds)
    for df in ratings.values():
        df.unpersist()
    best = max(trials, key=lambda t: t.ndcg)
    return best.params, trials
