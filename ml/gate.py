"""The promotion gate: a candidate is promoted only when it is better than every baseline
(most-popular as served, and the current model when there is one) by more than noise.

Each comparison holds the candidate's and the baseline's NDCG@10 per user on the same
held-out plays. A paired bootstrap over users resamples those users with replacement and
takes the mean gain each time: the candidate passes a comparison when the lower end of the
gain's ``confidence`` interval is above zero and at least ``min_users`` users were
evaluated. A fixed relative margin cannot tell a real gain on a few hundred users from a
lucky seed; the interval can, and the decision records it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

GATE_METRIC = "ndcg@10"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261207


@dataclass(frozen=True)
class Comparison:
    """The candidate against one baseline, user by user, on the same held-out plays."""

    baseline: str
    how: str  # which plays, and which models, were compared: said in the decision
    candidate: Mapping[str, float]  # user -> the candidate's NDCG@10
    reference: Mapping[str, float]  # user -> the baseline's NDCG@10

    def paired(self) -> tuple[np.ndarray, np.ndarray]:
        users = sorted(set(self.candidate) & set(self.reference))
        return (
            np.array([self.candidate[u] for u in users], dtype=np.float64),
            np.array([self.reference[u] for u in users], dtype=np.float64),
        )


@dataclass(frozen=True)
class Interval:
    users: int
    candidate: float
    baseline: float
    gain: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {
            "users": self.users,
            GATE_METRIC: self.candidate,
            f"baseline_{GATE_METRIC}": self.baseline,
            "gain": self.gain,
            "gain_low": self.low,
            "gain_high": self.high,
        }


def paired_bootstrap(
    candidate: np.ndarray,
    baseline: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """The mean per-user gain of ``candidate`` over ``baseline`` and its percentile
    interval: users are drawn with replacement, each draw keeping a user's two scores
    together (the pairing is what removes the users' own spread from the noise)."""
    if candidate.shape != baseline.shape:
        raise ValueError("candidate and baseline must score the same users")
    n = len(candidate)
    if n == 0:
        return Interval(0, 0.0, 0.0, 0.0, 0.0, 0.0)  # refused: no user to judge on
    gains = candidate - baseline
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = gains[draws].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(
        n, float(candidate.mean()), float(baseline.mean()), float(gains.mean()), low, high
    )


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    intervals: Mapping[str, Mapping[str, float]] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "intervals": dict(self.intervals or {}),
        }


def decide(
    comparisons: Sequence[Comparison], min_users: int, confidence: float = 0.95
) -> GateDecision:
    """Promote when, for every comparison, at least ``min_users`` users were evaluated and
    the ``confidence`` interval of the candidate's mean NDCG@10 gain lies above zero."""
    if not comparisons:
        raise ValueError("no baseline to compare the candidate with")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    verdicts, failed, intervals = [], [], {}
    level = f"{confidence:.0%}"
    for comparison in comparisons:
        interval = paired_bootstrap(*comparison.paired(), confidence=confidence)
        intervals[comparison.baseline] = {"how": comparison.how, **interval.to_dict()}
        said = (
            f"{comparison.baseline} ({comparison.how}): {GATE_METRIC} "
            f"{interval.candidate:.4f} vs {interval.baseline:.4f} over {interval.users} users, "
            f"gain {interval.gain:+.4f}, {level} interval [{interval.low:+.4f}, "
            f"{interval.high:+.4f}]"
        )
        if interval.users < min_users:
            failed.append(comparison.baseline)
            said += f" (fewer than the {min_users} users the gate needs)"
        elif not interval.low > 0:
            failed.append(comparison.baseline)
        verdicts.append(said)
    against = "; ".join(verdicts)
    if failed:
        return GateDecision(
            False, f"not shown better than {' and '.join(failed)}: {against}", intervals
        )
    return GateDecision(True, f"better than every baseline: {against}", intervals)
