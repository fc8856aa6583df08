"""MusicBrainz's web service (``/ws/2``, JSON) as a track-metadata source.

A tunelake track id is a MusicBrainz *recording* MBID when it comes from outside (the id
every MusicBrainz-aware player and ListenBrainz report); ids that are not UUIDs (the
traffic generator's ``trk-000042``) cannot be looked up and are left out, so the quality
check reports them.

The service's rules (https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting): at most
one request a second per client, and a User-Agent naming the application, its version and
a contact; anything else gets 503s (MusicBrainz's throttling answer) or a ban. So every
request, retries included, waits its turn at one limiter; 429 and 5xx answers and
timeouts are retried with exponential backoff (or the ``Retry-After`` the server gives).
Ids are fetched 50 at a time with one search (``rid:(a OR b ...)``), whose answers are
paged by ``offset``: 50 tracks cost one request, not 50.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version

import httpx

from ingestion.metadata.source import MetadataSourceError, TrackMetadata, parse_recording

log = logging.getLogger(__name__)

# Ids per search: the query stays a few kB and its answers fit one page of 100.
IDS_PER_QUERY = 50
PAGE_SIZE = 100  # the most MusicBrainz returns per page
RETRIED_STATUS = frozenset({429, *range(500, 600)})
MAX_BACKOFF_SECONDS = 60.0


def user_agent(contact: str) -> str:
    """``tunelake/<version> ( <contact> )``, the form MusicBrainz asks for."""
    try:
        ours = version("tunelake")
    except PackageNotFoundError:  # a checkout run without installing
        ours = "dev"
    return f"tunelake/{ours} ( {contact} )"


def is_mbid(text: str) -> bool:
    try:
        # The canonical form only: the id comes back from MusicBrainz in that form.
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class RateLimiter:
    """Spaces the starts of calls at least ``1 / per_second`` apart (thread-safe)."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"rate must be positive, not {per_second}")
        self.interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:  # absent, or an HTTP date (MusicBrainz sends seconds)
        return None


class MusicBrainzClient:
    """Requests to ``/ws/2`` under MusicBrainz's rules; a ``MetadataSource``."""

    name = "musicbrainz"

    def __init__(
        self,
        base_url: str,
        contact: str,
        requests_per_second: float = 1.0,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not contact.strip():
            raise ValueError("MusicBrainz requires a contact (URL or e-mail) in the User-Agent")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"User-Agent": user_agent(contact), "Accept": "application/json"},
            timeout=timeout_s,
        )
        self._limiter = RateLimiter(requests_per_second, sleep=sleep)
        self._sleep = sleep
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MusicBrainzClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, str | int]) -> dict:
        """One JSON answer of ``/ws/2/<path>``, retried on 429, 5xx and timeouts."""
        params = {**params, "fmt": "json"}
        problem = ""
        for attempt in range(self.max_attempts):
            self._limiter.wait()
            try:
                response = self._http.get(path, params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code not in RETRIED_STATUS:
                    if response.is_error:
                        raise MetadataSourceError(
                            f"MusicBrainz refused {path} {params}: {response.status_code} "
                            f"{response.text[:200]}"
                        )
                    return response.json()
                problem, wait = f"HTTP {response.status_code}", _retry_after(response)
            if attempt + 1 < self.max_attempts:
                wait = wait if wait is not None else self.backoff_s * 2**attempt
                log.warning("MusicBrainz %s: %s; retrying in %.1fs", path, problem, wait)
                self._sleep(min(wait, MAX_BACKOFF_SECONDS))
        raise MetadataSourceError(
            f"MusicBrainz {path} failed {self.max_attempts} times; last: {problem}"
        )

    def search_recordings(self, query: str) -> Iterator[dict]:
        """Every recording a search finds, page by page (``offset`` until ``count``)."""
        offset = 0
        while True:
            page = self.get("recording", {"query": query, "limit": PAGE_SIZE, "offset": offset})
            recordings = page.get("recordings", [])
            yield from recordings
            offset += len(recordings)
            if not recordings or offset >= page.get("count", 0):
                return

    def fetch(self, track_ids: Sequence[str]) -> list[TrackMetadata]:
        wanted = sorted({t for t in track_ids if is_mbid(t)})
        if len(wanted) < len(track_ids):
            log.info("%d track ids are not MBIDs: not asked", len(track_ids) - len(wanted))
        found: list[TrackMetadata] = []
        for start in range(0, len(wanted), IDS_PER_QUERY):
            batch = set(wanted[start : start + IDS_PER_QUERY])
            query = "rid:(" + " OR ".join(sorted(batch)) + ")"
            for recording in self.search_recordings(query):
                if recording.get("id") in batch:
                    found.append(parse_recording(recording["id"], recording))
                    batch.discard(recording["id"])
        return found
