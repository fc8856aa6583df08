"""The track_metadata DAG on the live stack with the offline source, in a lake of its own:
each task of the DAG file runs its command (the Spark tasks through the job registry, in
this process; the Trino registration as Airflow calls it).

Inputs are tiny Bronze and Silver event tables written here (the metadata chain reads
only their track ids and ingest dates) and the generated track catalog, minus one track.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from airflow.dag_processing.dagbag import DagBag
from delta.tables import DeltaTable
from jinja2 import Environment, StrictUndefined
from typer.testing import CliRunner

from dq.reports import stored
from ingestion.catalog import write_catalog
from ingestion.generator import build_world
from ingestion.metadata.offline import BUNDLED_CATALOG, OfflineSource
from ingestion.streams import STREAMS, Stream
from spark_jobs.bronze import track_metadata
from spark_jobs.silver import dim_track
from spark_jobs.silver.build import SilverRun
from spark_jobs.silver.tables import SILVER_TABLES
from spark_jobs.track_metadata import refresh
from tests.support import throwaway_lake
from tunelake.settings import Settings, get_settings
from tunelake_ops.airflow_env import DAGS_FOLDER
from tunelake_ops.jobs import jobs
from tunelake_ops.trino import query, schema_of

DAY = date(2026, 11, 20)
WORLD = build_world(users=10, tracks=6)
T = WORLD.track_ids  # trk-000000 .. trk-000005; the last is not in the lake's catalog


@pytest.fixture
def lake(monkeypatch, spark, s3, trino):
    with throwaway_lake(monkeypatch, "metadata") as lake:
        get_settings.cache_clear()  # the job registry and the Trino task read get_settings()
        try:
            yield lake
        finally:
            get_settings.cache_clear()


def write_events(spark, lake: Settings) -> None:
    def save(rows, schema: str, path: str) -> None:
        spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(path)

    def bronze(stream: Stream) -> str:
        return lake.bronze_path(STREAMS[stream].topic(lake))

    earlier = DAY - timedelta(days=3)
    save(
        [(T[0], DAY), (T[1], DAY), (T[3], earlier)],
        "track_id string, ingest_date date",
        bronze(Stream.LISTENS),
    )
    save(
        [([(T[2], 1), (T[5], 2)], DAY)],
        "items array<struct<track_id: string, rank: int>>, ingest_date date",
        bronze(Stream.RECOMMENDATIONS),
    )
    save([(T[1], DAY)], "track_id string, ingest_date date", bronze(Stream.FEEDBACK))
    silver = [(T[0],), (T[1],), (T[3],)], [(T[2],), (T[5],)]
    for name, rows in zip(("listens", "impressions"), silver, strict=True):
        save(rows, "track_id string", SILVER_TABLES[name].path(lake))
    write_catalog(lake, WORLD.catalog()[:5])


def run_dag(start: date, end: date) -> list[str]:
    """Every task of dags/track_metadata.py in order; returns what the last registered."""
    bag = DagBag(dag_folder=str(DAGS_FOLDER / "track_metadata.py"))
    assert bag.import_errors == {}
    context = {
        "params": {"start": start.isoformat(), "end": end.isoformat()},
        "dag_run": SimpleNamespace(run_type="manual", run_after=None),
        "data_interval_end": None,
        "macros": SimpleNamespace(timedelta=timedelta),
    }
    env = Environment(undefined=StrictUndefined)
    registered: list[str] = []
    for task in bag.get_dag("track_metadata").topological_sort():
        if task.task_id == "register_in_trino":
            registered = task.python_callable()
            continue
        command = [env.from_string(arg).render(context) for arg in task.application_args]
        result = CliRunner().invoke(jobs, command)
        assert result.exit_code == 0, (command, result.output, result.exception)
    return registered


def table(spark, path: str):
    return spark.read.format("delta").load(path)


def missing_report(lake: Settings, start: date, end: date):
    (report,) = stored(lake, f"{start}_{end}")["tracks_without_metadata"]
    return report


def test_the_dag_fills_bronze_and_an_scd2_dim_track_and_reports_tracks_without_metadata(
    spark, lake, tmp_path, monkeypatch
):
    write_events(spark, lake)
    monkeypatch.setattr(track_metadata, "FETCH_CHUNK", 2)
    # Before any answer: an empty dimension that readers find.
    result = CliRunner().invoke(jobs, ["metadata", "build", "--from", str(DAY), "--to", str(DAY)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert table(spark, dim_track.path(lake)).count() == 0

    # The day's run: the tracks its Bronze events name, but the one outside the catalog.
    registered = run_dag(DAY, DAY)
    fetched = table(spark, track_metadata.path(lake))
    assert sorted(r.track_id for r in fetched.collect()) == [T[0], T[1], T[2]]
    # Asked two at a time (T[5] included), each chunk's answers committed on their own.
    history = DeltaTable.forPath(spark, track_metadata.path(lake)).history().collect()
    assert sorted(int(h.operationMetrics["numOutputRows"]) for h in history) == [1, 2]
    assert {r.source for r in fetched.collect()} == {"offline"}
    first = {r.track_id: r for r in table(spark, dim_track.path(lake)).collect()}
    assert set(first) == {T[0], T[1], T[2]}
    assert all(r.is_current and r.valid_to is None for r in first.values())
    genre = {t.track_id: t.genre for t in WORLD.catalog()}
    bundled = json.loads(BUNDLED_CATALOG.read_text())
    for track_id, row in first.items():
        assert row.genres[0] == bundled["genres"][genre[track_id]]["musicbrainz_genres"][0]
    # Silver names trk-000003 (ingested on another day) and trk-000005 (unknown).
    report = missing_report(lake, DAY, DAY)
    assert report.passed and report.rows == 5
    (warning,) = report.failures
    assert warning.severity == "warning" and warning.unexpected_count == 2
    assert set(warning.sample) == {T[3], T[5]}
    # Registered in Trino, where analysts read the dimension.
    bronze, silver = schema_of(lake, "bronze"), schema_of(lake, "silver")
    assert {f"{bronze}.track_metadata", f"{silver}.dim_track"} <= set(registered)
    rows = query(lake, f'SELECT count(*) FROM "{silver}".dim_track WHERE is_current').rows
    assert rows == [[3]]

    # A retry of the day (the whole chain, as the in-process pipeline runs it) fetches
    # nothing again: only the unknown track is asked for, again.
    again = refresh(spark, lake, SilverRun.for_dates(DAY, DAY))
    assert (again.fetched.asked, again.fetched.fetched, again.dim_track_rows) == (1, 0, 3)
    assert table(spark, track_metadata.path(lake)).count() == 3
    assert again.describe() == (
        "track metadata from offline: 0 of 1 tracks fetched; dim_track 3 rows; "
        "2 of 5 event tracks without metadata"
    )

    # The source's answers change (an artist renamed) and everything is stale: a backfill
    # over the earlier days re-fetches, and dim_track closes the changed tracks' old rows.
    revised = json.loads(BUNDLED_CATALOG.read_text())
    old_source = OfflineSource(bundled, genre)
    renamed = old_source.recording(T[0])["artist-credit"][0]["name"]
    for artist in revised["genres"][genre[T[0]]]["artists"]:
        if artist["name"] == renamed:
            artist["name"] = f"{renamed} (renamed)"
    path = tmp_path / "revised_catalog.json"
    path.write_text(json.dumps(revised))
    monkeypatch.setenv("TUNELAKE_METADATA_OFFLINE_CATALOG", str(path))
    monkeypatch.setenv("TUNELAKE_METADATA_STALE_DAYS", "0")
    get_settings.cache_clear()
    new_source = OfflineSource(revised, genre)
    changed = {t for t in T[:4] if old_source.recording(t) != new_source.recording(t)}
    assert T[0] in changed

    start = DAY - timedelta(days=3)
    run_dag(start, DAY)
    assert table(spark, track_metadata.path(lake)).count() == 3 + 4
    versions: dict[str, list] = {}
    for row in table(spark, dim_track.path(lake)).orderBy("valid_from").collect():
        versions.setdefault(row.track_id, []).append(row)
    assert set(versions) == {T[0], T[1], T[2], T[3]}
    for track_id in (T[0], T[1], T[2]):
        if track_id in changed:
            old, new = versions[track_id]
            assert (old.artist, old.is_current) == (renamed, False)
            assert old.valid_from == first[track_id].valid_from
            assert old.valid_to == new.valid_from and new.valid_to is None
            assert (new.artist, new.is_current) == (f"{renamed} (renamed)", True)
        else:  # re-fetched, same answer: still the one row from the first run
            assert [(v.valid_from, v.is_current) for v in versions[track_id]] == [
                (first[track_id].valid_from, True)
            ]
    assert [v.is_current for v in versions[T[3]]] == [True]
    (warning,) = missing_report(lake, start, DAY).failures
    assert warning.unexpected_count == 1 and warning.sample == [T[5]]
