"""Recommendations before a model exists: most-popular tracks the user has not played."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from service.models import RecommendedItem

log = logging.getLogger(__name__)

POPULARITY_MODEL = "popularity"


class PlayedTracks:
    """Tracks each user played, as seen by this process (bounded LRU over users)."""

    def __init__(self, max_users: int = 100_000, max_tracks_per_user: int = 5_000) -> None:
        self._by_user: OrderedDict[str, set[str]] = OrderedDict()
        self._max_users = max_users
        self._max_tracks = max_tracks_per_user
        self._lock = threading.Lock()

    def add(self, user_id: str, track_ids: list[str]) -> None:
        with self._lock:
            played = self._by_user.pop(user_id, set())
            if len(played) < self._max_tracks:
                played.update(track_ids[: self._max_tracks - len(played)])
            self._by_user[user_id] = played
            while len(self._by_user) > self._max_users:
                self._by_user.popitem(last=False)

    def of(self, user_id: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._by_user.get(user_id, ()))


class RankingUnavailable(RuntimeError):
    """The popularity source failed and no ranking was ever loaded: nothing to serve yet."""

    def __init__(self, retry_after_s: float, cause: Exception) -> None:
        super().__init__(f"popularity source unavailable: {cause}")
        self.retry_after_s = retry_after_s


class PopularityRecommender:
    """Ranks tracks by popularity from a loader, reloaded at most every ``ttl_s`` seconds.

    The loader returns ``(track_id, popularity)`` pairs, or None when no source exists yet
    (the demo seeds the catalog after the service starts). When it raises (S3 down), the
    last loaded ranking is served, and the source is asked again after ``retry_s``; with no
    ranking loaded yet, ``RankingUnavailable`` says when to retry.
    """

    model_version = POPULARITY_MODEL

    def __init__(
        self,
        load: Callable[[], list[tuple[str, float]] | None],
        ttl_s: float = 60.0,
        retry_s: float = 5.0,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._ranked: list[tuple[str, float]] | None = None  # None: never loaded
        self._source_error: Exception | None = None
        self._next_load = 0.0
        self._lock = threading.Lock()

    def _ranking(self) -> list[tuple[str, float]]:
        with self._lock:
            now = time.monotonic()
            if now >= self._next_load:
                try:
                    loaded = self._load()
                except Exception as exc:  # whatever the source raised: serve what we have
                    log.warning("popularity source failed: %s", exc)
                    self._source_error = exc
                    self._next_load = now + self._retry_s
                else:
                    self._source_error = None
                    if loaded is None:  # no source yet: look again soon, not on every request
                        self._next_load = now + self._retry_s
                    else:
                        self._ranked = sorted(loaded, key=lambda item: (-item[1], item[0]))
                        self._next_load = now + self._ttl_s
            if self._ranked is None and self._source_error is not None:
                raise RankingUnavailable(self._next_load - now, self._source_error)
            return self._ranked or []

    def recommend(self, k: int, exclude: frozenset[str] = frozenset()) -> list[RecommendedItem]:
        items: list[RecommendedItem] = []
        for track_id, score in self._ranking():
            if track_id in exclude:
                continue
            items.append(RecommendedItem(track_id=track_id, rank=len(items) + 1, score=score))
            if len(items) == k:
                break
        return items
