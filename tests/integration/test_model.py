"""Retraining on the live object store: Silver-shaped Delta tables of generator listens with
planted tastes -> ALS -> registry -> gate, in a lakehouse and a models bucket of their own.

One module-scoped lake: every retraining costs several ALS fits, so the tests share one
trained-and-promoted model and run in file order.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingestion.generator import build_world, history
from ml import registry
from ml.als import SearchSpace
from ml.model import AlsParams
from ml.train import TrainingDataError, retrain
from spark_jobs.silver.tables import SILVER_TABLES
from tests.support import throwaway_lake
from tunelake.settings import Settings
from tunelake_ops.demo import running_service
from tunelake_ops.stack.ports import free_port
from tunelake_ops.stack.process import wait_until

# Twelve genres, peaked tastes: enough plays per user for the last 20% to say something.
USERS, TRACKS, DAYS, NEW_DAYS = 100, 300, 20, 4
NOW = datetime(2025, 6, 1, tzinfo=UTC)
WORSE = AlsParams(rank=1, reg_param=0.1, alpha=1.0, max_iter=1)
PLAYS: list[tuple] = []  # every play add_history wrote to the module's lake


@pytest.fixture(scope="module")
def lake(kafka, s3, registry, trino) -> Iterator[Settings]:
    """Buckets and topics of the module's own, in the environment too: the service and the
    `tunelake model` commands the last test starts use them."""
    with (
        pytest.MonkeyPatch.context() as env,
        throwaway_lake(
            env,
            "test_model",
            # A budget the first trial always overruns: the search must stop after it.
            model_search_seconds="1",
            service_port=str(free_port()),
            model_refresh_seconds="0.2",
            # The load below is one key's: no rate limit in the way.
            api_rate_per_second="100000",
            api_rate_burst="100000",
        ) as settings,
    ):
        yield settings


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
    failed = worse.reason.split(":")[0]  # "not shown better than <baselines>"
    assert failed.startswith("not shown better than") and failed.endswith("current")
    # Judged on the new plays, the current model folded in: the decision says so.
    interval = worse.decision.intervals["current"]
    assert "after its training data ends" in interval["how"] and interval["gain_low"] <= 0
    assert registry.current(lake) == promoted
    kept = registry.show(lake, worse.version)
    assert kept["gate"] == worse.decision.to_dict()
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


def test_a_promotion_that_races_another_loses_with_a_clear_error(lake, monkeypatch):
    first, refused = (v["version"] for v in registry.list_versions(lake))
    assert registry.current(lake) == first
    # Retraining judged a candidate against `first`; an operator promoted another meanwhile.
    registry.promote(lake, refused)
    with pytest.raises(registry.ConcurrentPromotionError, match=f"judged against {first}"):
        registry.promote(lake, first, expected=first)
    assert registry.current(lake) == refused

    # Two writers read the pointer at once: the second write finds the object changed.
    stale = registry._pointer_and_tag(lake)
    registry.rollback(lake)
    monkeypatch.setattr(registry, "_pointer_and_tag", lambda settings: stale)
    with pytest.raises(registry.ConcurrentPromotionError, match="changed while moving"):
        registry.promote(lake, first)
    monkeypatch.undo()
    assert registry.current(lake) == first  # the rollback stands
    assert registry.pointer(lake).previous == ()


class LoadGenerator:
    """Threads asking the service for the known users' lists until stopped; every answer's
    status and model version is kept."""

    def __init__(self, url: str, settings: Settings, users: list[str], threads: int = 3) -> None:
        self._url, self._key, self._users = url, settings.client_api_key, users
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]
        self.answers: list[tuple[int, str | None]] = []

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self._url, headers={"X-API-Key": self._key}) as http:
            n = offset
            while not self._stop.is_set():
                user = self._users[n % len(self._users)]
                response = http.get(f"/users/{user}/recommendations", params={"k": 10})
                body = response.json() if response.status_code == 200 else {}
                self.answers.append((response.status_code, body.get("model_version")))
                n += 1

    def served_since(self, start: int) -> set[str | None]:
        return {version for _, version in self.answers[start:]}

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def tunelake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunelake_ops", *args], capture_output=True, text=True, timeout=60
    )


def test_the_running_service_swaps_models_under_load_without_a_failed_request(lake):
    first, refused = (v["version"] for v in registry.list_versions(lake))
    users = list(registry.load(lake, first).user_ids[:20])
    with running_service(lake) as url, LoadGenerator(url, lake, users) as load:

        def now_serving(version: str) -> bool:
            mark = len(load.answers)
            # Every answer after the swap is the new version's.
            return wait_until(lambda: len(load.answers) > mark + 20, timeout_s=30) and (
                wait_until(
                    lambda: load.served_since(len(load.answers) - 10) == {version}, timeout_s=30
                )
            )

        assert now_serving(first)
        for _ in range(3):
            promoted = tunelake("model", "promote", refused)
            assert promoted.returncode == 0, promoted.stderr
            assert now_serving(refused)
            rolled_back = tunelake("model", "rollback")
            assert rolled_back.returncode == 0, rolled_back.stderr
            assert f"current model: {first}" in rolled_back.stdout
            assert now_serving(first)
    failed = [answer for answer in load.answers if answer[0] != 200]
    assert failed == [], f"{len(failed)} of {len(load.answers)} requests failed"
    assert len(load.answers) > 200
    assert registry.current(lake) == first
    listed = tunelake("model", "list")
    assert listed.returncode == 0 and refused in listed.stdout and first in listed.stdout
