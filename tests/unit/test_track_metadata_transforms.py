"""The track_metadata transforms on tiny DataFrames: which tracks are fetched, the SCD2
dimension, and the tracks-without-metadata check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spark_jobs.bronze.track_metadata import SCHEMA, needing_fetch
from spark_jobs.silver.dim_track import COLUMNS, scd2, tracks_without_metadata

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def fetched(track_id: str, at: datetime, title: str = "Song", artist: str = "Ann") -> dict:
    return {
        "track_id": track_id,
        "recording_mbid": f"mbid-{track_id}",
        "title": title,
        "artist": artist,
        "album": "Debut",
        "genres": ["rock"],
        "duration_ms": 200_000,
        "release_year": 1999,
        "response": "{}",
        "source": "offline",
        "fetched_at": at,
        "fetch_date": at.date(),
    }


def rows_by_track(df) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in df.orderBy("track_id", "valid_from").collect():
        out.setdefault(row.track_id, []).append(row)
    return out


def utc(value: datetime | None) -> datetime | None:
    # Spark hands timestamps back naive, in the session's zone (UTC here).
    return value.replace(tzinfo=UTC) if value else None


def test_a_changed_answer_closes_the_old_row_and_an_unchanged_one_adds_none(spark):
    day = timedelta(days=1)
    history = spark.createDataFrame(
        [
            fetched("a", T0),
            fetched("a", T0 + 30 * day),  # the same answer again: no new version
            fetched("a", T0 + 60 * day, artist="Ann & Bo"),  # changed
            fetched("a", T0 + 60 * day, artist="Ann & Bo"),  # a retried write, same instant
            fetched("b", T0 + day),
        ],
        SCHEMA,
    )
    dim = scd2(history)
    assert tuple(dim.columns) == COLUMNS
    tracks = rows_by_track(dim)
    old, new = tracks["a"]
    assert (old.artist, utc(old.valid_from), utc(old.valid_to), old.is_current) == (
        "Ann",
        T0,
        T0 + 60 * day,
        False,
    )
    assert (new.artist, utc(new.valid_from), new.valid_to, new.is_current) == (
        "Ann & Bo",
        T0 + 60 * day,
        None,
        True,
    )
    (b,) = tracks["b"]
    assert (utc(b.valid_from), b.valid_to, b.is_current) == (T0 + timedelta(days=1), None, True)


def test_a_change_and_its_revert_are_three_versions_one_current(spark):
    history = spark.createDataFrame(
        [
            fetched("a", T0, title="Song"),
            fetched("a", T0 + timedelta(hours=1), title="Song (Remastered)"),
            fetched("a", T0 + timedelta(hours=2), title="Song"),
        ],
        SCHEMA,
    )
    versions = rows_by_track(scd2(history))["a"]
    assert [(v.title, v.is_current) for v in versions] == [
        ("Song", False),
        ("Song (Remastered)", False),
        ("Song", True),
    ]
    assert [utc(v.valid_to) for v in versions[:2]] == [utc(v.valid_from) for v in versions[1:]]


def test_only_tracks_without_fresh_metadata_are_fetched(spark):
    now = T0 + timedelta(days=100)
    seen = spark.createDataFrame([("a",), ("b",), ("c",)], "track_id string")
    known = spark.createDataFrame(
        [fetched("a", now - timedelta(days=1)), fetched("b", now - timedelta(days=40))], SCHEMA
    )
    wanted = needing_fetch(seen, known, now, stale_days=30)
    assert sorted(r.track_id for r in wanted.collect()) == ["b", "c"]
    everything = needing_fetch(seen, known, now, stale_days=0)
    assert everything.count() == 3


def test_event_tracks_without_a_current_row_are_the_missing_ones(spark):
    events = spark.createDataFrame([("a",), ("b",), ("x",)], "track_id string")
    dimension = spark.createDataFrame(
        [("a", True), ("b", False), ("zz", True)], "track_id string, is_current boolean"
    )
    checked = tracks_without_metadata(events, dimension)
    assert checked.count() == 3
    missing = [r.missing_metadata for r in checked.collect() if r.missing_metadata]
    assert sorted(missing) == ["b", "x"]
