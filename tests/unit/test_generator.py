from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np

from ingestion.generator import GENRES, build_world, history

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_world_is_deterministic_for_a_seed():
    a, b = build_world(50, 300, seed=3), build_world(50, 300, seed=3)
    assert a.track_ids == b.track_ids
    assert np.array_equal(a.popularity, b.popularity)
    assert np.array_equal(a.tastes, b.tastes)
    assert not np.array_equal(a.tastes, build_world(50, 300, seed=4).tastes)


def test_popularity_is_zipf_skewed():
    world = build_world(10, 1000)
    top = np.sort(world.popularity)[::-1]
    assert abs(world.popularity.sum() - 1) < 1e-9
    assert top[:100].sum() > 0.6  # the top 10% of tracks take most of the mass
    assert top[0] / top[9] > 8


def test_history_follows_each_users_tastes():
    world = build_world(40, 2000, seed=5)
    plays = list(history(world, days=10, now=NOW))
    assert len(plays) > 1000
    genre_of = {t: world.track_genre[i] for i, t in enumerate(world.track_ids)}
    by_user: dict[str, Counter] = {}
    for user_id, listen in plays:
        by_user.setdefault(user_id, Counter())[genre_of[listen["track_id"]]] += 1
    hits = 0
    for user, user_id in enumerate(world.user_ids):
        if sum(by_user.get(user_id, Counter()).values()) < 30:
            continue
        favourite = int(np.argmax(world.tastes[user]))
        top_played = by_user[user_id].most_common(1)[0][0]
        hits += favourite == top_played
    active = sum(1 for c in by_user.values() if sum(c.values()) >= 30)
    assert hits / active > 0.8  # what users play reveals their taste: learnable
    assert len(GENRES) == world.tastes.shape[1]


def test_history_is_in_the_past_and_well_formed():
    world = build_world(20, 100)
    plays = list(history(world, days=3, now=NOW))
    times = [datetime.fromisoformat(p["played_at"]) for _, p in plays]
    assert min(times) >= datetime(2026, 11, 23, tzinfo=UTC)
    assert max(times) < NOW
    assert all(p["ms_played"] > 0 and p["track_id"] in world.track_ids for _, p in plays)
    assert set(world.catalog()[0].__dict__) == {"track_id", "popularity", "genre"}
