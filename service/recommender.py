"""What the service ranks with: the promoted ALS model, and most-popular when it has nothing.

- ``PlayedTracks``: the listens this process accepted, per user (what to leave out, and
  what to fold a user the model does not know into);
- ``PopularityRecommender``: most-popular tracks from a loader (Silver, see
  ``service/sources.py``), reloaded on a TTL;
- ``ModelRecommender``: the registry's current model, swapped for a newly promoted or
  rolled-back version by a background thread without a restart; requests read one
  snapshot (version and model together), so a swap never fails or mixes a request. The
  same thread reloads the users deleted in PostgreSQL, who get most-popular, never a
  personal list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from ml.model import DEFAULT_WEIGHTS, AlsModel
from service.models import RecommendedItem

log = logging.getLogger(__name__)

POPULARITY_MODEL = "popularity"


@dataclass(frozen=True)
class Recommendation:
    model_version: str
    items: list[RecommendedItem]


class Recommender(Protocol):
    @property
    def model_version(self) -> str:
        """The version served to users the model knows (``popularity`` before one)."""

    def recommend(self, user_id: str, k: int, recent: Mapping[str, float]) -> Recommendation: ...


def _items(scored: list[tuple[str, float]]) -> list[RecommendedItem]:
    return [
        RecommendedItem(track_id=track_id, rank=rank, score=score)
        for rank, (track_id, score) in enumerate(scored, start=1)
    ]


class PlayedTracks:
    """Plays and listening time per (user, track) accepted by this process (bounded LRU
    over users), as raw preferences by the training set's confidence formula."""

    def __init__(self, max_users: int = 100_000, max_tracks_per_user: int = 5_000) -> None:
        self._by_user: OrderedDict[str, dict[str, list[int]]] = OrderedDict()
        self._max_users = max_users
        self._max_tracks = max_tracks_per_user
        self._lock = threading.Lock()

    def add(self, user_id: str, listens: list[tuple[str, int]]) -> None:
        """``listens``: (track_id, ms_played) pairs."""
        with self._lock:
            played = self._by_user.pop(user_id, {})
            for track_id, ms_played in listens:
                counts = played.get(track_id)
                if counts is None:
                    if len(played) >= self._max_tracks:
                        continue
                    counts = played[track_id] = [0, 0]
                counts[0] += 1
                counts[1] += ms_played
            self._by_user[user_id] = played
            while len(self._by_user) > self._max_users:
                self._by_user.popitem(last=False)

    def of(self, user_id: str) -> dict[str, float]:
        """Track -> raw preference (plays and minutes, weighted as in training)."""
        with self._lock:
            played = self._by_user.get(user_id, {})
            return {t: DEFAULT_WEIGHTS.of(plays, ms) for t, (plays, ms) in played.items()}


class RankingUnavailable(RuntimeError):
    """The popularity source failed and no ranking was ever loaded: nothing to serve yet."""

    def __init__(self, retry_after_s: float, cause: Exception) -> None:
        super().__init__(f"popularity source unavailable: {cause}")
        self.retry_after_s = retry_after_s


class PopularityRecommender:
    """Ranks tracks by popularity from a loader, reloaded at most every ``ttl_s`` seconds.

    The loader returns ``(track_id, popularity)`` pairs, or None when no source exists yet.
    When it raises (S3 down), the last loaded ranking is served, and the source is asked
    again after ``retry_s``; with no ranking loaded yet, ``RankingUnavailable`` says when
    to retry.
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

    def recommend(self, user_id: str, k: int, recent: Mapping[str, float]) -> Recommendation:
        scored: list[tuple[str, float]] = []
        for track_id, score in self._ranking():
            if track_id not in recent:
                scored.append((track_id, score))
                if len(scored) == k:
                    break
        return Recommendation(POPULARITY_MODEL, _items(scored))


class ModelSource(Protocol):
    """Where promoted models live (``ml.registry`` on the object store)."""

    def current(self) -> str | None: ...
    def load(self, version: str) -> AlsModel: ...


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: AlsModel


class ModelRecommender:
    """Personal lists from the current model; most-popular for users it has nothing for.

    A user the model was trained on gets the top ``k`` by dot product, leaving out what they
    played in training and the listens accepted since (``recent``); a user it does not know
    but who has listens since is folded in from them; anyone else gets most-popular. A
    deleted user (``deleted``: a loader of their ids) gets most-popular as a stranger does,
    nothing drawn from what they played.
    ``refresh()`` follows the registry's pointer and ``refresh_deleted()`` reloads the
    deleted users; ``start()`` runs both every ``refresh_s``.
    """

    def __init__(
        self,
        source: ModelSource,
        popular: PopularityRecommender,
        refresh_s: float = 15.0,
        deleted: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self._source = source
        self._popular = popular
        self._refresh_s = refresh_s
        self._load_deleted = deleted
        self._loaded: LoadedModel | None = None  # swapped whole: one reference read per request
        self._deleted: Collection[str] = frozenset()  # swapped whole, as the model
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model_version(self) -> str:
        loaded = self._loaded
        return loaded.version if loaded else POPULARITY_MODEL

    def refresh(self) -> bool:
        """Load the pointer's version if it is not the one served; True when it swapped.
        With no model promoted (or every one rolled back), most-popular serves everyone."""
        version = self._source.current()
        loaded = self._loaded
        if version == (loaded.version if loaded else None):
            return False
        if version is None:
            self._loaded = None
            log.info("no model is promoted: serving most-popular")
            return True
        began = time.monotonic()
        model = self._source.load(version)
        # Computed before the swap, so no request pays for them.
        model.user_index, model.item_index, model.yty  # noqa: B018
        self._loaded = LoadedModel(version, model)
        log.info(
            "serving model %s (was %s; loaded in %.2f s)",
            version,
            loaded.version if loaded else POPULARITY_MODEL,
            time.monotonic() - began,
        )
        return True

    def refresh_deleted(self) -> int:
        """Reload the deleted users; returns how many there are."""
        deleted = frozenset(self._load_deleted())
        if deleted != self._deleted:
            log.info("deleted users: %d (were %d)", len(deleted), len(self._deleted))
        self._deleted = deleted
        return len(deleted)

    def _refresh_all(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the registry unreachable: keep serving what we have
            log.warning("model refresh failed, still serving %s: %s", self.model_version, exc)
        try:
            self.refresh_deleted()
        except Exception as exc:  # Silver unreachable: the deleted users known stay so
            log.warning("deleted users refresh failed, keeping %d: %s", len(self._deleted), exc)

    def _follow(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self._refresh_all()

    def start(self) -> None:
        """Load the current model and the deleted users now (a failure is logged: the
        thread tries again), then follow both in the background."""
        self._refresh_all()
        self._thread = threading.Thread(target=self._follow, name="model-refresh", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def recommend(self, user_id: str, k: int, recent: Mapping[str, float]) -> Recommendation:
        if user_id in self._deleted:
            return self._popular.recommend(user_id, k, {})
        loaded = self._loaded
        if loaded is not None:
            scored = loaded.model.recommend(user_id, k, recent)
            if scored:
                return Recommendation(loaded.version, _items(scored))
        return self._popular.recommend(user_id, k, recent)
