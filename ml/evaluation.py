"""Offline ranking metrics and the most-popular baseline (plain Python, no Spark).

Every metric takes ``recommended``: {user: ranked list of tracks} and ``relevant``:
{user: set of held-out tracks}, and averages over the users with at least one relevant
track (a user with relevant tracks but no list scores 0). Gains are binary: a track is
relevant or not.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

Recommendations = Mapping[str, Sequence[str]]
Relevant = Mapping[str, set[str]]
DEFAULT_K = 10


def _per_user(recommended: Recommendations, relevant: Relevant, score) -> float:
    users = [u for u, tracks in relevant.items() if tracks]
    if not users:
        return 0.0
    return sum(score(list(recommended.get(u, ())), relevant[u]) for u in users) / len(users)


def precision_at_k(recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K) -> float:
    """Relevant tracks among the top ``k``, over ``k``."""
    return _per_user(recommended, relevant, lambda recs, rel: len(set(recs[:k]) & rel) / k)


def recall_at_k(recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K) -> float:
    """Relevant tracks among the top ``k``, over the user's relevant tracks."""
    return _per_user(recommended, relevant, lambda recs, rel: len(set(recs[:k]) & rel) / len(rel))


def _average_precision(recs: list[str], rel: set[str], k: int) -> float:
    hits, total = 0, 0.0
    for position, track in enumerate(recs[:k], start=1):
        if track in rel:
            hits += 1
            total += hits / position
    return total / min(k, len(rel))


def map_at_k(recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K) -> float:
    """Mean average precision: precision at each hit's position, summed, over
    ``min(k, relevant tracks)`` (so a perfect list scores 1)."""
    return _per_user(recommended, relevant, lambda recs, rel: _average_precision(recs, rel, k))


def _ndcg(recs: list[str], rel: set[str], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, track in enumerate(recs[:k]) if track in rel)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
    return dcg / ideal


def ndcg_at_k(recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K) -> float:
    """Normalised discounted cumulative gain: a hit at position ``i`` (from 1) gains
    ``1 / log2(i + 1)``; divided by the gain of a list with every relevant track on top."""
    return _per_user(recommended, relevant, lambda recs, rel: _ndcg(recs, rel, k))


def ndcg_by_user(
    recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K
) -> dict[str, float]:
    """``ndcg_at_k`` before the average: each user with relevant tracks -> their NDCG."""
    return {u: _ndcg(list(recommended.get(u, ())), rel, k) for u, rel in relevant.items() if rel}


def hit_rate_at_k(recommended: Recommendations, relevant: Relevant, k: int = DEFAULT_K) -> float:
    """Share of users with at least one relevant track in their top ``k``."""
    return _per_user(recommended, relevant, lambda recs, rel: float(bool(set(recs[:k]) & rel)))


def catalog_coverage(recommended: Recommendations, catalog_size: int, k: int = DEFAULT_K) -> float:
    """Distinct tracks in all top-``k`` lists, over the catalog's size."""
    if catalog_size <= 0:
        raise ValueError(f"catalog_size must be positive, got {catalog_size}")
    shown = {track for recs in recommended.values() for track in list(recs)[:k]}
    return len(shown) / catalog_size


def ranking_metrics(
    recommended: Recommendations, relevant: Relevant, catalog_size: int, k: int = DEFAULT_K
) -> dict[str, float]:
    """Every metric above, named with its ``k`` (``ndcg@10``, ...), plus the user count."""
    return {
        f"precision@{k}": precision_at_k(recommended, relevant, k),
        f"recall@{k}": recall_at_k(recommended, relevant, k),
        f"map@{k}": map_at_k(recommended, relevant, k),
        f"ndcg@{k}": ndcg_at_k(recommended, relevant, k),
        f"hit_rate@{k}": hit_rate_at_k(recommended, relevant, k),
        f"coverage@{k}": catalog_coverage(recommended, catalog_size, k),
        "users": float(sum(1 for tracks in relevant.values() if tracks)),
    }


def popularity_ranking(plays: Iterable[tuple[str, float]]) -> list[str]:
    """Tracks by total plays in ``plays`` ((track, plays) pairs), most played first; ties
    by track id, so the ranking is deterministic."""
    totals: Counter[str] = Counter()
    for track, count in plays:
        totals[track] += count
    return sorted(totals, key=lambda track: (-totals[track], track))


def most_popular(
    ranking: Sequence[str], users: Iterable[str], seen: Mapping[str, set[str]], k: int = DEFAULT_K
) -> dict[str, list[str]]:
    """The baseline recommender: for each user, the ``k`` most popular tracks of the
    training window (``ranking``, see ``popularity_ranking``) they have not seen."""
    lists = {}
    for user in users:
        known = seen.get(user, set())
        picks: list[str] = []
        for track in ranking:
            if track not in known:
                picks.append(track)
                if len(picks) == k:
                    break
        lists[user] = picks
    return lists
