"""What a track-metadata source answers, and how a MusicBrainz recording becomes it.

Both sources speak MusicBrainz's recording JSON (``/ws/2`` with ``fmt=json``): the live
client receives it, the offline source builds it, and ``parse_recording`` reads it once
for both, so the offline tests exercise the parser the live client relies on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class MetadataSourceError(RuntimeError):
    """A source could not answer (retries exhausted, a refused request, a bad answer)."""


@dataclass(frozen=True)
class TrackMetadata:
    track_id: str
    recording_mbid: str
    title: str
    artist: str | None
    album: str | None
    genres: tuple[str, ...]
    duration_ms: int | None
    release_year: int | None
    # The recording as the source answered it (Bronze keeps what the source said).
    response: str


class MetadataSource(Protocol):
    name: str

    def fetch(self, track_ids: Sequence[str]) -> list[TrackMetadata]:
        """Metadata of the tracks the source knows; unknown ids are left out."""
        ...

    def close(self) -> None: ...


def _artist(recording: dict) -> str | None:
    credits = recording.get("artist-credit") or []
    if not credits:
        return None
    # MusicBrainz spells a credit as names joined by their joinphrases ("A feat. B").
    return "".join(
        c.get("name", c.get("artist", {}).get("name", "")) + c.get("joinphrase", "")
        for c in credits
    )


def _first_release(recording: dict) -> dict | None:
    releases = recording.get("releases") or []
    dated = sorted((r for r in releases if r.get("date")), key=lambda r: r["date"])
    return (dated or releases or [None])[0]


def _year(text: str | None) -> int | None:
    return int(text[:4]) if text and text[:4].isdigit() else None


def _genres(recording: dict) -> tuple[str, ...]:
    # Lookups with inc=genres carry `genres`; search answers only `tags` (genres are the
    # tags MusicBrainz curates as such): fall back to the tags, most voted first.
    voted = recording.get("genres") or recording.get("tags") or []
    ranked = sorted(voted, key=lambda g: (-g.get("count", 0), g["name"]))
    return tuple(g["name"] for g in ranked)


def parse_recording(track_id: str, recording: dict) -> TrackMetadata:
    """One MusicBrainz recording (lookup, browse or search answer) as a track's metadata."""
    try:
        release = _first_release(recording)
        return TrackMetadata(
            track_id=track_id,
            recording_mbid=recording["id"],
            title=recording["title"],
            artist=_artist(recording),
            album=release.get("title") if release else None,
            genres=_genres(recording),
            duration_ms=recording.get("length"),
            release_year=_year(recording.get("first-release-date"))
            or _year(release.get("date") if release else None),
            response=json.dumps(recording, sort_keys=True),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MetadataSourceError(
            f"track {track_id}: not a MusicBrainz recording ({exc!r})"
        ) from None
