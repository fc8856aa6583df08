"""Offline ranking metrics and the most-popular baseline, on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from ml import evaluation as ev

# alice: hits at positions 1 and 3 of 4 relevant; bob: one hit at position 2 of 1 relevant;
# carol: relevant tracks but no list at all.
RECS = {"alice": ["a", "x", "b", "y"], "bob": ["z", "c"], "dave": ["q"]}
RELEVANT = {"alice": {"a", "b", "c", "d"}, "bob": {"c"}, "carol": {"e"}}


def test_precision_and_recall_average_over_users_with_relevant_tracks():
    # alice 2/4, bob 1/4, carol 0 (no list); dave has no relevant tracks and is not counted.
    assert ev.precision_at_k(RECS, RELEVANT, k=4) == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert ev.recall_at_k(RECS, RELEVANT, k=4) == pytest.approx((2 / 4 + 1 / 1 + 0) / 3)
    # Only the top k count.
    assert ev.precision_at_k(RECS, RELEVANT, k=1) == pytest.approx((1 + 0 + 0) / 3)


def test_map_divides_by_the_hits_a_perfect_list_could_have():
    alice = (1 / 1 + 2 / 3) / 4  # min(k=4, 4 relevant)
    bob = (1 / 2) / 1
    assert ev.map_at_k(RECS, RELEVANT, k=4) == pytest.approx((alice + bob) / 3)
    assert ev.map_at_k({"u": ["a", "b"]}, {"u": {"a", "b"}}, k=10) == pytest.approx(1.0)


def test_ndcg_discounts_later_hits():
    alice = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5))
    bob = (1 / math.log2(3)) / 1
    assert ev.ndcg_at_k(RECS, RELEVANT, k=4) == pytest.approx((alice + bob) / 3)
    assert ev.ndcg_at_k({"u": ["a", "b", "x"]}, {"u": {"a", "b"}}) == pytest.approx(1.0)
    assert ev.ndcg_at_k({"u": ["x", "a"]}, {"u": {"a"}}) < ev.ndcg_at_k({"u": ["a"]}, {"u": {"a"}})


def test_hit_rate_and_coverage():
    assert ev.hit_rate_at_k(RECS, RELEVANT, k=4) == pytest.approx(2 / 3)
    assert ev.hit_rate_at_k(RECS, RELEVANT, k=1) == pytest.approx(1 / 3)
    # Distinct tracks in the top 2 of every list: a, x, z, c, q.
    assert ev.catalog_coverage(RECS, catalog_size=10, k=2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ev.catalog_coverage(RECS, catalog_size=0)


def test_no_relevant_users_score_zero():
    assert ev.ndcg_at_k(RECS, {"alice": set()}) == 0.0


def test_ranking_metrics_names_every_metric_with_k():
    metrics = ev.ranking_metrics(RECS, RELEVANT, catalog_size=10, k=4)
    assert set(metrics) == {
        "precision@4",
        "recall@4",
        "map@4",
        "ndcg@4",
        "hit_rate@4",
        "coverage@4",
        "users",
    }
    assert metrics["users"] == 3


def test_ndcg_by_user_is_ndcg_at_k_before_the_average():
    by_user = ev.ndcg_by_user(RECS, RELEVANT, k=4)
    assert set(by_user) == {"alice", "bob", "carol"}
    assert by_user["carol"] == 0.0
    assert sum(by_user.values()) / 3 == pytest.approx(ev.ndcg_at_k(RECS, RELEVANT, k=4))


def test_most_popular_ranks_by_plays_and_leaves_out_what_the_user_has():
    ranking = ev.popularity_ranking([("b", 3), ("a", 2), ("c", 5), ("a", 2), ("d", 1)])
    assert ranking == ["c", "a", "b", "d"]  # a: 4 plays over two rows
    # Ties go to the lower track id.
    assert ev.popularity_ranking([("y", 1), ("x", 1)]) == ["x", "y"]
    lists = ev.most_popular(ranking, ["u", "v"], {"u": {"c", "b"}}, k=2)
    assert lists == {"u": ["a", "d"], "v": ["c", "a"]}
