"""Realistic listening traffic, posted through the HTTP API: the demo's and benchmarks' source.

The world: tracks in genres with Zipf popularity; users with latent genre tastes and an
activity level. History: ``days`` of sessions of plays drawn from each user's tastes
(popular tracks more often), posted as listen imports. Live: each active user asks the
service for recommendations, plays the recommended tracks that suit their taste (quoting
the ``request_id``), skips the others and sometimes likes what they played. A
recommender that learns tastes can therefore beat popularity.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np

from ingestion.catalog import CatalogTrack
from ingestion.profiles import ProfileChange

log = logging.getLogger(__name__)

GENRES = (
    "rock",
    "pop",
    "jazz",
    "hiphop",
    "electronic",
    "classical",
    "folk",
    "metal",
    "soul",
    "latin",
    "ambient",
    "country",
)
MAX_BATCH = 1000
# A 429 is waited out (its Retry-After) this many times before the generator gives up.
MAX_RATE_LIMITED_TRIES = 20


@dataclass(frozen=True)
class World:
    track_ids: list[str]
    track_genre: np.ndarray  # genre index per track
    popularity: np.ndarray  # Zipf weight per track (sums to 1)
    user_ids: list[str]
    tastes: np.ndarray  # users x genres, rows sum to 1
    activity: np.ndarray  # mean sessions per day per user

    def catalog(self) -> list[CatalogTrack]:
        return [
            CatalogTrack(track_id=t, popularity=float(p), genre=GENRES[g])
            for t, p, g in zip(self.track_ids, self.popularity, self.track_genre, strict=True)
        ]

    def taste_of(self, user: int, track: int) -> float:
        return float(self.tastes[user, self.track_genre[track]])


COUNTRIES = ("DE", "FR", "GB", "US", "BR", "JP", "SE", "ES", "IT", "NL", "MX", "KR")


def profile_of(world: World, user: int) -> ProfileChange:
    """The user's PostgreSQL profile: a country, a birth year and, as preferences, the two
    genres their taste leans to most."""
    rng = np.random.default_rng(user)
    favourites = np.argsort(world.tastes[user])[::-1][:2]
    return ProfileChange(
        display_name=f"Listener {user}",
        country=COUNTRIES[int(rng.integers(len(COUNTRIES)))],
        birth_year=int(rng.integers(1955, 2008)),
        preferences={"genres": [GENRES[g] for g in favourites]},
    )


def build_world(users: int, tracks: int, seed: int = 7, zipf_s: float = 1.1) -> World:
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(tracks) + 1
    weights = 1.0 / ranks.astype(float) ** zipf_s
    # Peaked tastes: most users care about two or three genres.
    tastes = rng.dirichlet(np.full(len(GENRES), 0.3), size=users)
    return World(
        track_ids=[f"trk-{i:06d}" for i in range(tracks)],
        track_genre=rng.integers(0, len(GENRES), size=tracks),
        popularity=weights / weights.sum(),
        user_ids=[f"usr-{i:05d}" for i in range(users)],
        tastes=tastes,
        activity=rng.lognormal(mean=0.0, sigma=0.6, size=users),
    )


def _pick_track(world: World, rng: np.random.Generator, user: int) -> int:
    genre = rng.choice(len(GENRES), p=world.tastes[user])
    in_genre = np.flatnonzero(world.track_genre == genre)
    if in_genre.size == 0:
        return int(rng.choice(len(world.track_ids), p=world.popularity))
    weights = world.popularity[in_genre]
    return int(rng.choice(in_genre, p=weights / weights.sum()))


def _ms_played(rng: np.random.Generator, taste: float) -> int:
    # Plays of liked genres run long; others are often abandoned early.
    full = rng.integers(150_000, 260_000)
    return int(full if rng.random() < 0.35 + taste else rng.integers(5_000, 45_000))


def history(
    world: World, days: int, now: datetime, seed: int = 11, activity: float = 1.0
) -> Iterator[tuple[str, dict]]:
    """(user_id, listen) pairs for ``days`` days before ``now``, in session order;
    ``activity`` scales every user's sessions a day (a long, sparse history: below 1)."""
    rng = np.random.default_rng(seed)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(days):
        day_start = start + timedelta(days=day)
        for user, user_id in enumerate(world.user_ids):
            for _ in range(rng.poisson(activity * world.activity[user])):
                at = day_start + timedelta(seconds=int(rng.integers(0, 86_000)))
                for _ in range(int(rng.geometric(1 / 8))):
                    track = _pick_track(world, rng, user)
                    ms = _ms_played(rng, world.taste_of(user, track))
                    if at >= now:
                        break
                    yield (
                        user_id,
                        {
                            "track_id": world.track_ids[track],
                            "played_at": at.isoformat(timespec="milliseconds"),
                            "ms_played": ms,
                            "context": "history",
                        },
                    )
                    at += timedelta(milliseconds=ms + int(rng.integers(500, 5_000)))


@dataclass
class TrafficReport:
    listens: int = 0
    feedback: int = 0
    recommendations: int = 0
    sample_response: dict = field(default_factory=dict)


class TrafficPoster:
    """Posts a world's traffic to a running service."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout_s, headers={"X-API-Key": api_key}
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        """Send, waiting out the service's per-key rate limit (429 + Retry-After)."""
        for _ in range(MAX_RATE_LIMITED_TRIES):
            response = self._http.request(method, url, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        response.raise_for_status()
        return response

    def post_listens(self, user_id: str, listens: list[dict]) -> int:
        accepted = 0
        for i in range(0, len(listens), MAX_BATCH):
            response = self._request(
                "POST", f"/users/{user_id}/listens", json={"listens": listens[i : i + MAX_BATCH]}
            )
            accepted += response.json()["accepted"]
        return accepted

    def post_history(
        self,
        world: World,
        days: int,
        now: datetime,
        report: TrafficReport,
        activity: float = 1.0,
    ) -> None:
        by_user: dict[str, list[dict]] = {}
        for user_id, listen in history(world, days, now, activity=activity):
            by_user.setdefault(user_id, []).append(listen)
        for user_id, listens in by_user.items():
            report.listens += self.post_listens(user_id, listens)

    def live_sessions(
        self, world: World, report: TrafficReport, seed: int = 13, k: int = 10
    ) -> None:
        """Each active user takes one recommendation list and reacts to it now."""
        rng = np.random.default_rng(seed)
        for user, user_id in enumerate(world.user_ids):
            if rng.random() > min(1.0, world.activity[user] / 2):
                continue
            response = self._request("GET", f"/users/{user_id}/recommendations", params={"k": k})
            body = response.json()
            report.recommendations += 1
            report.sample_response = report.sample_response or body
            now = datetime.now(UTC)
            plays = []
            track_index = {t: i for i, t in enumerate(world.track_ids)}
            for item in body["items"]:
                taste = (
                    world.taste_of(user, track_index[item["track_id"]])
                    if item["track_id"] in track_index
                    else 0.0
                )
                if rng.random() < 0.15 + 2.5 * taste:
                    plays.append(
                        {
                            "track_id": item["track_id"],
                            "request_id": body["request_id"],
                            "played_at": now.isoformat(timespec="milliseconds"),
                            "ms_played": _ms_played(rng, taste),
                            "context": "recommendations",
                        }
                    )
                    action = "like" if rng.random() < taste else "play"
                else:
                    action = "skip"
                self._feedback(user_id, body["request_id"], item["track_id"], action)
                report.feedback += 1
            if plays:
                report.listens += self.post_listens(user_id, plays)

    def _feedback(self, user_id: str, request_id: str, track_id: str, action: str) -> None:
        self._request(
            "POST",
            f"/users/{user_id}/feedback",
            json={"request_id": request_id, "track_id": track_id, "action": action},
        )


def generate_traffic(
    base_url: str, api_key: str, world: World, days: int, *, live: bool = True
) -> TrafficReport:
    """Post ``days`` of history and (``live``) one recommendation session per active user."""
    report = TrafficReport()
    poster = TrafficPoster(base_url, api_key)
    try:
        poster.post_history(world, days, datetime.now(UTC), report)
        if live:
            poster.live_sessions(world, report)
    finally:
        poster.close()
    log.info(
        "posted %d listens, %d feedback, %d recommendation requests",
        report.listens,
        report.feedback,
        report.recommendations,
    )
    return report
