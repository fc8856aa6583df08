"""Retraining: published Silver -> search -> train -> evaluate -> registry -> gate.

``retrain`` is one plain function the job registry, the CLI and the DAG call alike:

1. reads Silver ``user_track_interactions`` and ``listens`` at their latest Delta versions
   (the versions are recorded with the model);
2. holds out each user's last 20% of plays (``training_set.holdout_split``);
3. searches the hyper-parameters on a time-cut validation split of the remaining plays,
   within ``TUNELAKE_MODEL_SEARCH_SECONDS``;
4. trains the candidate with the chosen parameters on the holdout's training side and
   measures it, most-popular (same training window) and the current model (its item
   factors, every user folded in from the same training side) on the held-out plays;
5. trains the model it stores on every interaction, with the same parameters;
6. saves it with its metrics and the gate's decision, and promotes it if the gate passed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ml import als, evaluation, gate, registry, training_set
from ml.model import AlsModel, AlsParams
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.settings import Settings

log = logging.getLogger(__name__)

TRAINING_TABLES = ("user_track_interactions", "listens")


class TrainingDataError(RuntimeError):
    """The Silver tables a model trains on are missing or hold nothing to train on."""


@dataclass(frozen=True)
class RetrainResult:
    version: str
    promoted: bool
    reason: str
    params: AlsParams
    metrics: dict[str, dict[str, float]]  # candidate, most_popular and (if any) current
    silver_versions: dict[str, int]
    trials: list[als.Trial] = field(default_factory=list)
    seconds: float = 0.0


def read_silver(
    spark: SparkSession, settings: Settings
) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """The training tables at their latest Delta versions, and those versions."""
    tables, versions = {}, {}
    for name in TRAINING_TABLES:
        path = SILVER_TABLES[name].path(settings)
        if not DeltaTable.isDeltaTable(spark, path):
            raise TrainingDataError(
                f"no Silver table {name} at {path}: run the Silver pipeline "
                "(`tunelake pipeline run`) first"
            )
        versions[name] = DeltaTable.forPath(spark, path).history(1).first()["version"]
        tables[name] = spark.read.format("delta").option("versionAsOf", versions[name]).load(path)
    return tables, versions


def _preferences(training: DataFrame) -> dict[str, dict[str, float]]:
    """(user_id, track_id, confidence) rows as {user: {track: confidence}}."""
    table = training.select("user_id", "track_id", "confidence").toArrow()
    prefs: dict[str, dict[str, float]] = {}
    for user, track, value in zip(
        *(table.column(c).to_pylist() for c in ("user_id", "track_id", "confidence")),
        strict=True,
    ):
        prefs.setdefault(user, {})[track] = value
    return prefs


def _play_counts(listens: DataFrame) -> list[tuple[str, float]]:
    table = listens.groupBy("track_id").agg(F.count("*").alias("plays")).toArrow()
    return list(
        zip(table.column("track_id").to_pylist(), table.column("plays").to_pylist(), strict=True)
    )


def evaluate_holdout(
    candidate: AlsModel,
    holdout: training_set.Split,
    current: AlsModel | None,
) -> dict[str, dict[str, float]]:
    """Metrics@10 of the candidate, most-popular and the current model (if any) on the
    holdout's relevant tracks, every list leaving out the user's training tracks."""
    relevant = als.relevant_sets(holdout.relevant)
    preferences = _preferences(holdout.training)
    catalog = len({t for tracks in preferences.values() for t in tracks})
    seen = {user: set(tracks) for user, tracks in preferences.items()}
    lists = {
        "candidate": als.known_user_lists(candidate, relevant),
        "most_popular": evaluation.most_popular(
            evaluation.popularity_ranking(_play_counts(holdout.listens)), relevant, seen
        ),
    }
    if current is not None:
        lists["current"] = als.folded_in_lists(
            current, {u: preferences.get(u, {}) for u in relevant}
        )
    return {
        name: evaluation.ranking_metrics(recs, relevant, catalog) for name, recs in lists.items()
    }


def retrain(
    spark: SparkSession,
    settings: Settings,
    *,
    space: als.SearchSpace = als.DEFAULT_SEARCH_SPACE,
    params: AlsParams | None = None,
) -> RetrainResult:
    """Train, evaluate, register and (if the gate passes) promote a new model. ``params``
    skips the search and trains with exactly these parameters."""
    started = time.monotonic()
    trained_at = datetime.now(UTC)
    tables, silver_versions = read_silver(spark, settings)
    interactions = tables["user_track_interactions"]
    listens = tables["listens"].select("event_id", "user_id", "track_id", "played_at", "ms_played")
    holdout = training_set.holdout_split(interactions.cache(), listens.cache())
    # Every later step reads these: compute them once, not once per Spark action.
    cached = [interactions, listens, holdout.listens, holdout.training, holdout.relevant]
    for df in cached[2:]:
        df.cache()
    if holdout.relevant.isEmpty():
        raise TrainingDataError(
            "no user has held-out plays of tracks new to them: too little listening history "
            "to evaluate a model (each user's last 20% of plays are held out)"
        )
    trials: list[als.Trial] = []
    if params is None:
        validation = training_set.validation_split(holdout)
        params, trials = als.search(validation, space, settings.model_search_seconds)
    candidate = als.train(holdout.training, params)
    live_version = registry.current(settings)
    live = registry.load(settings, live_version) if live_version else None
    metrics = evaluate_holdout(candidate, holdout, live)
    baselines = {name: m for name, m in metrics.items() if name != "candidate"}
    decision = gate.decide(metrics["candidate"], baselines, settings.model_promotion_margin)
    model = als.train(training_set.confidence(interactions), params)
    for df in cached:
        df.unpersist()
    version = registry.save(
        settings,
        model,
        metrics={**metrics, "current_version": live_version},
        decision=decision,
        silver_versions=silver_versions,
        trained_at=trained_at,
        training_seconds=time.monotonic() - started,
        trials=[t.to_dict() for t in trials],
    )
    if decision.promote:
        registry.promote(settings, version)
    log.info(
        "model %s %s: %s; metrics %s",
        version,
        "promoted" if decision.promote else "refused",
        decision.reason,
        metrics,
    )
    return RetrainResult(
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        params=params,
        metrics=metrics,
        silver_versions=silver_versions,
        trials=trials,
        seconds=time.monotonic() - started,
    )
