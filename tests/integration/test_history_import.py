"""A new user's first real use: months of listening history, all older than the model in
service, imported with `tunelake import listens` and turned by `tunelake pipeline run`
into a promoted model that serves the imported users personal lists.

The current model (trained on other, generated users) ends its training data today, so no
held-out play of the imported users is newer than it: the gate refits its configuration on
the candidate's training split and compares configuration against configuration.
The tests share the module's lake and run in file order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from ingestion.generator import build_world, history
from ingestion.streams import STREAMS, Stream
from ml import evaluation, registry
from ml.gate import GateDecision
from service.sources import silver_popularity
from tests.support import throwaway_lake, two_taste_model
from tunelake.clients import delta_table, kafka_consumer
from tunelake_ops.history_import import import_listens
from tunelake_ops.pipeline import run_pipeline

USERS, TRACKS = 120, 300
HISTORY_DAYS, LATER_DAYS = 60, 14


@pytest.fixture(scope="module")
def lake(kafka, s3, registry, trino):
    with (
        pytest.MonkeyPatch.context() as env,
        throwaway_lake(
            env, "it_import", model_search_seconds="5", model_gate_min_users="30"
        ) as settings,
    ):
        yield settings


def _plays(world, days: int, end: datetime, seed: int) -> list[dict]:
    return [{"user_id": user} | play for user, play in history(world, days, end, seed=seed)]


@pytest.fixture(scope="module")
def history_file(tmp_path_factory):
    """Sixty days of plays that ended a month ago, and the two weeks after them (held back:
    what the imported users play next, which the served lists are judged on)."""
    world = build_world(USERS, TRACKS, seed=21)
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    imported = _plays(world, HISTORY_DAYS, ended, seed=22)
    later = _plays(world, LATER_DAYS, ended + timedelta(days=LATER_DAYS), seed=23)
    path = tmp_path_factory.mktemp("import") / "history.csv"
    columns = ("user_id", "track_id", "played_at", "ms_played")
    pacsv.write_csv(pa.table({c: [str(p[c]) for p in imported] for c in columns}), path)
    return path, imported, later


def _current_model_trained_today(settings) -> str:
    """A promoted model of other users whose training data ends now: no imported play is
    newer than it."""
    version = registry.save(
        settings,
        two_taste_model(),
        metrics={},
        decision=GateDecision(True, "the model in service before the import"),
        silver_versions={},
        trained_at=datetime.now(UTC),
        trained_through=datetime.now(UTC),
        training_seconds=0.0,
        trials=[],
    )
    registry.promote(settings, version)
    return version


def _bronze_listens(settings) -> int:
    uri = settings.bronze_path(STREAMS[Stream.LISTENS].topic(settings))
    return delta_table(settings, uri).to_pyarrow_dataset().count_rows()


@pytest.mark.timeout(900)
def test_imported_history_older_than_the_model_gets_a_promoted_personal_model(lake, history_file):
    path, imported, later = history_file
    before = _current_model_trained_today(lake)

    summary = import_listens(lake, path)
    assert (summary.rows, summary.refused_total) == (len(imported), 0)
    assert summary.published == summary.accepted > 0.95 * len(imported)

    today = datetime.now(UTC).date()
    pipeline = run_pipeline(lake, today, today)

    model = pipeline.model
    assert model is not None and model.promoted, model and model.reason
    assert registry.current(lake) == model.version != before
    judged = model.decision.intervals["current"]
    assert "refit on the candidate's training split" in judged["how"], judged
    assert judged["gain_low"] > 0 and model.decision.intervals["most_popular"]["gain_low"] > 0

    # What the service now serves the imported users, judged on what they played next.
    served = registry.load(lake)
    played = {}
    for play in imported:
        played.setdefault(play["user_id"], set()).add(play["track_id"])
    relevant = {}
    for play in later:
        if play["track_id"] not in played.get(play["user_id"], set()):
            relevant.setdefault(play["user_id"], set()).add(play["track_id"])
    personal = {u: [t for t, _ in served.recommend(u, 10)] for u in relevant}
    assert all(len(items) == 10 for items in personal.values())
    popular = evaluation.popularity_ranking(silver_popularity(lake)())
    most_popular = evaluation.most_popular(popular, relevant, played)
    ndcg_served = evaluation.ndcg_at_k(personal, relevant)
    ndcg_popular = evaluation.ndcg_at_k(most_popular, relevant)
    assert ndcg_served > ndcg_popular, (ndcg_served, ndcg_popular)
    assert np.mean([len(r) for r in relevant.values()]) > 1


def _listens_end_offsets(settings) -> dict:
    from kafka import TopicPartition

    topic = STREAMS[Stream.LISTENS].topic(settings)
    consumer = kafka_consumer(settings, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return consumer.end_offsets(partitions)
    finally:
        consumer.close()


def test_a_dry_run_reports_every_row_and_sends_none(lake, tmp_path):
    played = datetime.now(UTC) - timedelta(days=3)
    rows = [
        {
            "user_id": "dry-run-user",
            "track_id": f"t{i}",
            "played_at": played.isoformat(),
            "ms_played": 1000,
        }
        for i in range(4)
    ]
    rows += [rows[0], rows[1] | {"ms_played": -5}]
    path = tmp_path / "new.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    before = _listens_end_offsets(lake)

    dry = import_listens(lake, path, dry_run=True)

    assert (dry.rows, dry.accepted, dry.duplicates_in_file, dry.published) == (6, 4, 1, 0)
    assert dry.already_in_lake == 0
    assert dry.refused_total == 1 and all("ms_played" in reason for reason in dry.refused)
    assert _listens_end_offsets(lake) == before


def test_importing_the_same_file_again_adds_no_row(lake, history_file):
    path, _, _ = history_file
    landed = _bronze_listens(lake)  # after the first test's import and pipeline run

    again = import_listens(lake, path)

    assert again.published == 0
    assert again.already_in_lake == again.accepted
    assert _bronze_listens(lake) == landed
