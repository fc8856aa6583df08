"""Track-metadata sources: MusicBrainz's web service, or an offline catalog, by settings.

``metadata_source(settings)`` is the one place that chooses (``TUNELAKE_METADATA_SOURCE``);
the ``track_metadata`` job only sees a ``MetadataSource``.
"""

from __future__ import annotations

from pathlib import Path

from ingestion.metadata.source import MetadataSource, MetadataSourceError, TrackMetadata
from tunelake.settings import Settings

__all__ = ["MetadataSource", "MetadataSourceError", "TrackMetadata", "metadata_source"]


def metadata_source(settings: Settings) -> MetadataSource:
    """The source settings name: ``offline`` answers for the lake's generated track catalog,
    ``musicbrainz`` asks the web service (close it when done)."""
    if settings.metadata_source == "musicbrainz":
        from ingestion.metadata.musicbrainz import MusicBrainzClient

        return MusicBrainzClient(
            settings.metadata_musicbrainz_url,
            settings.metadata_contact,
            requests_per_second=settings.metadata_requests_per_second,
            timeout_s=settings.metadata_timeout_seconds,
            max_attempts=settings.metadata_max_attempts,
            backoff_s=settings.metadata_backoff_seconds,
        )
    from ingestion.catalog import read_catalog
    from ingestion.metadata.offline import OfflineSource

    catalog = read_catalog(settings) or []
    path = settings.metadata_offline_catalog
    return OfflineSource.from_file(
        {t.track_id: t.genre for t in catalog}, Path(path) if path else None
    )
