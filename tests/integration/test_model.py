"""Retraining on the live object store: Silver-shaped Delta tables of generator listens with
planted tastes -> ALS -> registry -> gate, in a lakehouse and a models bucket of their own.

One module-scoped lake: every retraining costs several ALS fits, so the tests share one
trained-and-promoted model and run in file order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.generator import build_world, history
from ml import registry
from ml.als import SearchSpace
from ml.model import AlsParams
from ml.train import TrainingDataError, retrain
from spark_jobs.silver.tables import SILVER_TABLES
from tunelake.settings import Settings
from tunelake_ops.stack.probes import drop_bucket, ensure_buckets

# Twelve genres, peaked tastes: enough plays per user for the last 20% to say something.
USERS, TRACKS, DAYS, NEW_DAYS = 100, 300, 20, 4
NOW = datetime(2025, 6, 1, tzinfo=UTC)
WORSE = AlsParams(rank=1, reg_param=0.1, alpha=1.0, max_iter=1)
PLAYS: list[tuple] = []  # every play add_history wrote to the module's lake


@pytest.fixture(scope="module")
def lake(s3: Settings) -> Iterator[Settings]:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        lakehouse_bucket=f"test-model-lake-{suffix}",
        models_bucket=f"test-models-{suffix}",
        # A budget the first trial always overruns: the search must stop after it.
        model_search_seconds=1.0,
    )
    ensure_buckets(settings, (settings.lakehouse_bucket, settings.models_bucket))
    try:
        yield settings
    finally:
        drop_bucket(settings, settings.lakehouse_bucket)
        drop_bucket(settings, settings.models_bucket)


SILVER_LISTENS = (
    "event_id string, user_id string, track_id string, played_at timestamp, ms_played long, "
    "context string, request_id string, accepted_at timestamp, play_date date"
)
SILVER_INTERACTIONS = (
    "user_id string, track_id string, play_count long, ms_played long, "
    "recommended_count long, recommended_and_played long, skips long, likes long, "
    "dislikes long, last_played_at timestamp"
)


def add_history(spark, settings: Settings, now: datetime, days: int, seed: int) -> None:
    """Append ``days`` of generator plays before ``now`` to Silver ``listens`` and rewrite
    ``user_track_interactions`` with every play's counts (a new Delta version of each).
    Counted here in Python: Spark jobs on 20k rows cost more than the rows."""
    world = build_world(USERS, TRACKS, seed=3)
    plays = [
        (
            f"ev-{seed}-{i}",
            user,
            p["track_id"],
            datetime.fromisoformat(p["played_at"]),
            p["ms_played"],
        )
        for i, (user, p) in enumerate(history(world, days, now, seed=seed))
    ]
    PLAYS.extend(plays)
    pairs: dict[tuple[str, str], list] = {}
    for _, user, track, at, ms in PLAYS:
        count = pairs.setdefault((user, track), [0, 0, at])
        count[0], count[1], count[2] = count[0] + 1, count[1] + ms, max(count[2], at)
    listens = [(*play, "history", None, play[3], play[3].date()) for play in plays]
    interactions = [(u, t, n, ms, 0, 0, 0, 0, 0, last) for (u, t), (n, ms, last) in pairs.items()]
    spark.createDataFrame(listens, SILVER_LISTENS).write.format("delta").mode("append").save(
        SILVER_TABLES["listens"].path(settings)
    )
    spark.createDataFrame(interactions, SILVER_INTERACTIONS).write.format("delta").mode(
        "overwrite"
    ).save(SILVER_TABLES["user_track_interactions"].path(settings))


def test_retraining_refuses_to_run_without_silver(spark, lake):
    with pytest.raises(TrainingDataError, match="no Silver table"):
        retrain(spark, lake, params=WORSE)


def test_als_beats_most_popular_on_planted_tastes_and_is_promoted(spark, lake):
    add_history(spark, lake, NOW, DAYS, seed=11)
    space = SearchSpace(ranks=(16, 8), reg_params=(0.1,), alphas=(10.0,), max_iters=(6,))
    first = retrain(spark, lake, space=space)
    assert len(first.trials) == 1  # the 1 s budget ends the search after its first trial
    assert first.params == first.trials[0].params
    candidate, popular = first.metrics["candidate"], first.metrics["most_popular"]
    assert candidate["ndcg@10"] >= 1.5 * popular["ndcg@10"] > 0
    assert "current" not in first.metrics  # nothing was promoted before
    assert first.promoted
    assert registry.current(lake) == first.version
    record = registry.show(lake, first.version)
    assert record["silver_versions"] == {"user_track_interactions": 0, "listens": 0}
    assert record["params"] == first.params.to_dict()
    assert record["metrics"]["candidate"]["ndcg@10"] == candidate["ndcg@10"]
    assert record["gate"]["promote"] is True

    # The stored model serves the user's unplayed tracks only.
    model = registry.load(lake)
    assert model.params == first.params
    user = model.user_ids[0]
    played = {model.item_ids[i] for i in model.seen.row(0)[0]}
    picks = [track for track, _ in model.recommend(user, 10)]
    assert len(picks) == 10 and not set(picks) & played


def test_gate_refuses_a_worse_model_and_keeps_it_with_the_reason(spark, lake):
    promoted = registry.current(lake)
    # New plays: the current model is judged only on held-out plays it was not trained on.
    add_history(spark, lake, NOW + timedelta(days=NEW_DAYS), NEW_DAYS, seed=12)
    worse = retrain(spark, lake, params=WORSE)
    assert not worse.promoted
    assert worse.silver_versions == {"user_track_interactions": 1, "listens": 1}
    assert worse.metrics["candidate_vs_current"]["ndcg@10"] < worse.metrics["current"]["ndcg@10"]
    failed = worse.reason.split(" by the ")[0]  # "ndcg@10 does not beat <baselines>"
    assert failed.startswith("ndcg@10 does not beat") and failed.endswith("current")
    assert registry.current(lake) == promoted
    kept = registry.show(lake, worse.version)
    assert kept["gate"] == {"promote": False, "reason": worse.reason}
    assert kept["params"] == WORSE.to_dict()
    listed = {v["version"]: v for v in registry.list_versions(lake)}
    assert listed[worse.version]["current"] is False
    assert listed[promoted]["current"] is True


def test_promote_and_rollback_move_only_the_current_pointer(lake):
    first, refused = (v["version"] for v in registry.list_versions(lake))
    assert registry.current(lake) == first
    registry.promote(lake, refused)  # an operator's override of the gate
    assert registry.current(lake) == refused
    assert registry.rollback(lake).version == first
    assert registry.current(lake) == first
    with pytest.raises(registry.NothingToRollBackError):
        registry.rollback(lake)
    with pytest.raises(registry.UnknownVersionError):
        registry.promote(lake, "no-such-version")
    assert registry.load(lake, refused).params == WORSE
