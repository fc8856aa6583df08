"""Offline ranking metrics, the most-popular baseline and the promotion gate, on
hand-computed examples."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from ml import evaluation as ev
from ml.gate import decide

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


def test_most_popular_ranks_by_plays_and_leaves_out_what_the_user_has():
    ranking = ev.popularity_ranking([("b", 3), ("a", 2), ("c", 5), ("a", 2), ("d", 1)])
    assert ranking == ["c", "a", "b", "d"]  # a: 4 plays over two rows
    # Ties go to the lower track id.
    assert ev.popularity_ranking([("y", 1), ("x", 1)]) == ["x", "y"]
    lists = ev.most_popular(ranking, ["u", "v"], {"u": {"c", "b"}}, k=2)
    assert lists == {"u": ["a", "d"], "v": ["c", "a"]}


def test_gate_needs_every_baseline_beaten_by_the_margin():
    def ndcg(value):
        return {"ndcg@10": value}

    popular = (ndcg(0.205), ndcg(0.10))
    assert decide({"most_popular": popular}, margin=0.02).promote
    # Above current's 0.20 but not by 2%: refused, and the reason names that baseline.
    refused = decide({"most_popular": popular, "current": (ndcg(0.203), ndcg(0.20))}, 0.02)
    assert not refused.promote
    assert refused.reason.startswith("ndcg@10 does not beat current by the 2% margin")
    # Each baseline is compared with the candidate's score on its own plays.
    assert decide({"most_popular": popular, "current": (ndcg(0.3), ndcg(0.2))}, 0.02).promote
    # Equal is not better, even without a margin; against a zero baseline, above zero is.
    assert not decide({"most_popular": (ndcg(0.1), ndcg(0.1))}, margin=0.0).promote
    assert decide({"most_popular": (ndcg(0.01), ndcg(0.0))}, margin=0.02).promote
    with pytest.raises(ValueError):
        decide({}, margin=0.02)


def test_retraining_refuses_when_no_held_out_play_is_new_to_the_current_model():
    from ml.train import Baseline, gate_decision

    current = Baseline("v1", model=None, trained_through=datetime(2025, 6, 1, tzinfo=UTC))
    popular_only = {"candidate": {"ndcg@10": 0.3}, "most_popular": {"ndcg@10": 0.1}}
    refused = gate_decision(popular_only, current, margin=0.02)
    assert not refused.promote
    assert "no held-out plays after 2025-06-01T00:00:00+00:00" in refused.reason
    assert "v1" in refused.reason
    assert gate_decision(popular_only, None, margin=0.02).promote
    with_current = {
        **popular_only,
        "candidate_vs_current": {"ndcg@10": 0.2},
        "current": {"ndcg@10": 0.25},
    }
    # Judged against current on the candidate's score over the same (newer) plays.
    assert not gate_decision(with_current, current, margin=0.02).promote
