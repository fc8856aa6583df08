"""The offline track-metadata source: MusicBrainz-format answers built from a bundled
catalog file, for the traffic generator's tracks, with no network.

The generator gives each track a genre (the lake's track catalog, ``ingestion.catalog``);
this source answers for exactly the tracks of that catalog, each as a MusicBrainz
recording of that genre: an artist of the genre with one of its albums (and its release
year), a title and a length, chosen by a hash of the track id, so every run, machine and
process answers the same. Its recording MBID is a name-based UUID (uuid5) of the track id:
stable, and never taken for a real MusicBrainz id (those are random, version 4). Tracks
outside the catalog are unknown, as a lookup miss would be.

The catalog file (``offline_catalog.json``, shipped in the wheel) can be replaced by another
(``TUNELAKE_METADATA_OFFLINE_CATALOG``): a revised file is how an offline lake sees its
metadata change.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ingestion.metadata.source import TrackMetadata, parse_recording

BUNDLED_CATALOG = Path(__file__).with_name("offline_catalog.json")
# The namespace of the offline MBIDs (uuid5 of the DNS name, fixed once).
OFFLINE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "offline.metadata.tunelake")


def _picks(track_id: str) -> list[int]:
    digest = hashlib.sha256(track_id.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4)]


def _mbid(*names: str) -> str:
    return str(uuid.uuid5(OFFLINE_NAMESPACE, "/".join(names)))


class OfflineSource:
    """Answers for the tracks of ``genre_of`` (track id -> generator genre)."""

    name = "offline"

    def __init__(self, catalog: dict, genre_of: Mapping[str, str]) -> None:
        self.catalog = catalog
        unknown = set(genre_of.values()) - set(catalog["genres"])
        if unknown:
            raise ValueError(f"the offline catalog has no genre {sorted(unknown)}")
        self.genre_of = dict(genre_of)

    @classmethod
    def from_file(cls, genre_of: Mapping[str, str], path: Path | None = None) -> OfflineSource:
        return cls(json.loads((path or BUNDLED_CATALOG).read_text()), genre_of)

    def recording(self, track_id: str) -> dict | None:
        """The MusicBrainz recording (search-answer JSON) this source has for a track."""
        genre = self.genre_of.get(track_id)
        if genre is None:
            return None
        spec = self.catalog["genres"][genre]
        pick = _picks(track_id)
        artist = spec["artists"][pick[0] % len(spec["artists"])]
        album = artist["albums"][pick[1] % len(artist["albums"])]
        first, second = self.catalog["title_words"]
        mean, spread = spec["length_ms"]
        # Votes as MusicBrainz users cast them: the genre always, its sub-genre on some.
        main, *sub = spec["musicbrainz_genres"]
        tags = [{"name": main, "count": 3 + pick[5] % 5}]
        if sub and pick[6] % 3:
            tags.append({"name": sub[0], "count": 1 + pick[6] % 2})
        day = _picks(f"{artist['name']}/{album['title']}")[0]  # one date per album
        released = f"{album['year']}-{1 + day % 12:02d}-{1 + day // 12 % 28:02d}"
        return {
            "id": _mbid("recording", track_id),
            "title": f"{first[pick[2] % len(first)]} {second[pick[3] % len(second)]}",
            "length": mean - spread + pick[4] % (2 * spread),
            "first-release-date": released,
            "artist-credit": [
                {
                    "name": artist["name"],
                    "artist": {"id": _mbid("artist", artist["name"]), "name": artist["name"]},
                }
            ],
            "releases": [
                {
                    "id": _mbid("release", artist["name"], album["title"]),
                    "title": album["title"],
                    "status": "Official",
                    "date": released,
                }
            ],
            "tags": tags,
        }

    def close(self) -> None:
        """Nothing to release (the protocol's, for the live client's connections)."""

    def fetch(self, track_ids: Sequence[str]) -> list[TrackMetadata]:
        answers = ((t, self.recording(t)) for t in track_ids)
        return [parse_recording(t, rec) for t, rec in answers if rec is not None]
