"""Retraining: published Silver -> search -> train -> evaluate -> registry -> gate.

``retrain`` is one plain function the job registry, the CLI and the DAG call alike:

1. reads Silver ``user_track_interactions`` and ``listens`` at their latest Delta versions
   (the versions are recorded with the model);
2. holds out each user's last 20% of plays (``training_set.holdout_split``);
3. searches the hyper-parameters and preference options (``als.SearchSpace``) on a
   validation split of the remaining plays made the same way (each user's last 20%),
   within ``TUNELAKE_MODEL_SEARCH_SECONDS``;
4. trains the candidate with the chosen parameters on the holdout's training side and
   judges it against most-popular (ranked over the recent window, as served) and the
   current model: on the held-out plays after the current model's training data ends
   (users folded in), or, when too few users have such plays (a backfill of old history),
   against the current model's configuration refit on the same training split; the gate
   (``ml.gate``) promotes only on a gain whose bootstrap interval lies above zero;
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
from spark_jobs.silver import privacy
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
    decision: gate.GateDecision
    params: AlsParams
    metrics: dict[str, dict[str, float]]  # candidate, most_popular and (if any) current
    silver_versions: dict[str, int]
    trials: list[als.Trial] = field(default_factory=list)
    seconds: float = 0.0


def read_silver(
    spark: SparkSession, settings: Settings
) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """The training tables at their latest Delta versions, and those versions, without
    the rows of users deleted in PostgreSQL (Silver ``dim_user``)."""
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
    dim_user = privacy.read_dim_user(spark, settings)
    if dim_user is not None:
        interactions, listens = training_set.without_erased(
            tables["user_track_interactions"], tables["listens"], privacy.erasures(dim_user)
        )
        tables |= {"user_track_interactions": interactions, "listens": listens}
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


@dataclass(frozen=True)
class Baseline:
    """The promoted model, and the time its training data ends (None: unknown)."""

    version: str
    model: AlsModel
    trained_through: datetime | None


def current_baseline(settings: Settings) -> Baseline | None:
    version = registry.current(settings)
    if version is None:
        return None
    through = registry.show(settings, version).get("trained_through")
    return Baseline(
        version,
        registry.load(settings, version),
        datetime.fromisoformat(through) if through else None,
    )


@dataclass(frozen=True)
class Evaluation:
    """Metrics@10 by model, and the per-user comparisons the gate decides on."""

    metrics: dict[str, dict[str, float]]
    comparisons: list[gate.Comparison]


def recent_play_counts(listens: DataFrame, window_days: int) -> list[tuple[str, float]]:
    """(track, plays) over the last ``window_days`` days of ``listens`` that hold plays:
    the window serving ranks most-popular by (``service.sources.silver_popularity``)."""
    latest = listens.agg(F.max("played_at")).first()[0]
    if latest is None:
        return []
    since = F.lit(latest) - F.expr(f"INTERVAL {window_days} DAYS")
    return _play_counts(listens.where(F.col("played_at") > since))


def evaluate_holdout(
    candidate: AlsModel,
    holdout: training_set.Split,
    settings: Settings,
    current: Baseline | None = None,
) -> Evaluation:
    """The candidate, most-popular and (with one) the current model on the holdout, every
    list leaving out the user's training tracks.

    The current model is judged on plays it has not seen: the held-out plays after its
    training data ends, its users folded in from the candidate's training side. When too
    few users have such plays (history that predates it, a backfill), its configuration
    is refit on the candidate's training split instead and both are judged on the same
    held-out plays: configuration against configuration. The comparison says which."""
    relevant = als.relevant_sets(holdout.relevant)
    preferences = _preferences(holdout.training)
    catalog = len({t for tracks in preferences.values() for t in tracks})
    seen = {user: set(tracks) for user, tracks in preferences.items()}
    candidate_lists = als.known_user_lists(candidate, relevant)
    window = settings.popular_window_days
    popular = evaluation.popularity_ranking(recent_play_counts(holdout.listens, window))
    popular_lists = evaluation.most_popular(popular, relevant, seen)
    metrics = {
        "candidate": evaluation.ranking_metrics(candidate_lists, relevant, catalog),
        "most_popular": evaluation.ranking_metrics(popular_lists, relevant, catalog),
    }
    comparisons = [
        gate.Comparison(
            "most_popular",
            f"most-popular of the last {window} days of training plays, as served",
            evaluation.ndcg_by_user(candidate_lists, relevant),
            evaluation.ndcg_by_user(popular_lists, relevant),
        )
    ]
    if current is None:
        return Evaluation(metrics, comparisons)
    unseen = (
        als.relevant_sets(holdout.relevant_after(current.trained_through))
        if current.trained_through
        else relevant
    )
    if len(unseen) >= settings.model_gate_min_users:
        current_lists = als.folded_in_lists(
            current.model, {u: preferences.get(u, {}) for u in unseen}
        )
        how = (
            f"model {current.version}, users folded in, on the held-out plays after its "
            f"training data ends ({current.trained_through.isoformat()})"
        )
        judged_on = unseen
    else:
        refit = als.train(holdout.ratings(current.model.params), current.model.params)
        current_lists = als.known_user_lists(refit, relevant)
        how = (
            f"model {current.version}'s configuration ({current.model.params}) refit on the "
            f"candidate's training split: {len(unseen)} users have held-out plays after its "
            "training data ends, too few to judge it on"
        )
        judged_on = relevant
    metrics["current"] = evaluation.ranking_metrics(current_lists, judged_on, catalog)
    metrics["candidate_vs_current"] = evaluation.ranking_metrics(
        candidate_lists, judged_on, catalog
    )
    comparisons.append(
        gate.Comparison(
            "current",
            how,
            evaluation.ndcg_by_user(candidate_lists, judged_on),
            evaluation.ndcg_by_user(current_lists, judged_on),
        )
    )
    return Evaluation(metrics, comparisons)


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
    als.cut_lineage(spark, settings)
    tables, silver_versions = read_silver(spark, settings)
    interactions = tables["user_track_interactions"]
    listens = tables["listens"].select("event_id", "user_id", "track_id", "played_at", "ms_played")
    holdout = training_set.holdout_split(interactions.cache(), listens.cache())
    # Every later step reads these: compute them once, not once per Spark action.
    cached = [
        interactions,
        listens,
        holdout.listens,
        holdout.interactions,
        holdout.training,
        holdout.relevant,
    ]
    for df in cached[2:]:
        df.cache()
    if holdout.relevant.isEmpty():
        raise TrainingDataError(
            "no user has held-out plays of tracks new to them: too little listening history "
            "to evaluate a model (each user's last 20% of plays are held out)"
        )
    log.info("read Silver %s; holdout built (%.1f s)", silver_versions, time.monotonic() - started)
    trials: list[als.Trial] = []
    if params is None:
        validation = training_set.validation_split(holdout)
        params, trials = als.search(validation, space, settings.model_search_seconds)
    candidate = als.train(holdout.ratings(params), params)
    current = current_baseline(settings)
    judged = evaluate_holdout(candidate, holdout, settings, current)
    metrics = judged.metrics
    decision = gate.decide(
        judged.comparisons, settings.model_gate_min_users, settings.model_gate_confidence
    )
    log.info("evaluated (%.1f s): %s", time.monotonic() - started, decision.reason)
    # Epoch seconds, not a Python datetime: those come back in the driver's local zone.
    last_play = listens.agg(F.max(F.col("played_at").cast("double"))).first()[0]
    trained_through = datetime.fromtimestamp(last_play, UTC)
    model = als.train(training_set.ratings(interactions, params, listens), params)
    for df in cached:
        df.unpersist()
    version = registry.save(
        settings,
        model,
        metrics={**metrics, "current_version": current.version if current else None},
        decision=decision,
        silver_versions=silver_versions,
        trained_at=trained_at,
        trained_through=trained_through,
        training_seconds=time.monotonic() - started,
        trials=[t.to_dict() for t in trials],
    )
    if decision.promote:
        registry.promote(settings, version, expected=current.version if current else None)
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
        decision=decision,
        params=params,
        metrics=metrics,
        silver_versions=silver_versions,
        trials=trials,
        seconds=time.monotonic() - started,
    )
