"""The offline metadata source: it answers, without a network, for every track of the
generated catalog, in MusicBrainz's format and coherent with the generator's genres."""

from __future__ import annotations

import json
import uuid

import pytest

from ingestion import catalog as lake_catalog
from ingestion.generator import GENRES, build_world
from ingestion.metadata import metadata_source
from ingestion.metadata.offline import BUNDLED_CATALOG, OfflineSource
from tunelake.settings import Settings

BUNDLED = json.loads(BUNDLED_CATALOG.read_text())


@pytest.fixture(scope="module")
def world():
    return build_world(users=100, tracks=500)  # the demo's world


def genre_map(world) -> dict[str, str]:
    return {t.track_id: t.genre for t in world.catalog()}


def test_every_generated_track_gets_metadata_of_its_genre(world):
    source = OfflineSource.from_file(genre_map(world))
    found = {m.track_id: m for m in source.fetch(world.track_ids)}
    assert set(found) == set(world.track_ids)
    for track in world.catalog():
        meta = found[track.track_id]
        spec = BUNDLED["genres"][track.genre]
        assert meta.genres[0] == spec["musicbrainz_genres"][0]
        artist = next(a for a in spec["artists"] if a["name"] == meta.artist)
        album = next(a for a in artist["albums"] if a["title"] == meta.album)
        assert meta.release_year == album["year"]
        mean, spread = spec["length_ms"]
        assert mean - spread <= meta.duration_ms < mean + spread
        assert uuid.UUID(meta.recording_mbid).version == 5  # never a real (v4) MBID
    assert len({m.recording_mbid for m in found.values()}) == len(found)
    # Spread like a catalog: every genre's artists appear, titles mostly distinct.
    assert {m.artist for m in found.values()} == {
        a["name"] for g in BUNDLED["genres"].values() for a in g["artists"]
    }
    assert len({(m.artist, m.title) for m in found.values()}) > 0.95 * len(found)


def test_answers_are_stable_across_instances_and_one_album_has_one_date(world):
    first = OfflineSource.from_file(genre_map(world)).fetch(world.track_ids)
    again = OfflineSource.from_file(genre_map(world)).fetch(world.track_ids)
    assert first == again
    dates = {}
    for meta in first:
        released = json.loads(meta.response)["first-release-date"]
        assert dates.setdefault((meta.artist, meta.album), released) == released


def test_tracks_outside_the_catalog_are_unknown(world):
    source = OfflineSource.from_file(genre_map(world))
    assert source.fetch(["t-unknown", world.track_ids[3]])[0].track_id == world.track_ids[3]
    assert source.fetch(["t-unknown"]) == []


def test_the_bundled_catalog_covers_every_generator_genre():
    assert set(BUNDLED["genres"]) == set(GENRES)
    with pytest.raises(ValueError, match="no genre"):
        OfflineSource(BUNDLED, {"t": "polka"})


def test_a_revised_catalog_file_changes_the_answers(tmp_path, world):
    revised = json.loads(BUNDLED_CATALOG.read_text())
    original = OfflineSource(BUNDLED, genre_map(world)).fetch(world.track_ids[:1])[0]
    spec = revised["genres"][world.catalog()[0].genre]
    artist = next(a for a in spec["artists"] if a["name"] == original.artist)
    artist["name"] = "Renamed"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(revised))
    changed = OfflineSource.from_file(genre_map(world), path).fetch(world.track_ids[:1])[0]
    assert changed.artist == "Renamed" and changed.title == original.title


def test_settings_choose_offline_by_default_over_the_lakes_catalog(monkeypatch, world):
    monkeypatch.setattr(lake_catalog, "read_catalog", lambda settings: world.catalog()[:10])
    source = metadata_source(Settings())
    assert source.name == "offline"
    assert len(source.fetch(world.track_ids)) == 10
    monkeypatch.setattr(lake_catalog, "read_catalog", lambda settings: None)
    assert metadata_source(Settings()).fetch(world.track_ids) == []
