"""The promotion gate: a candidate is promoted only when its NDCG@10 on held-out plays
beats every baseline (most-popular, and the current model when there is one) by a
relative margin (``TUNELAKE_MODEL_PROMOTION_MARGIN``).

Each baseline is compared on its own set of held-out plays (the current model only on
plays after its own training data ended), so the gate takes (candidate, baseline)
metric pairs, one per baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATE_METRIC = "ndcg@10"

Metrics = Mapping[str, float]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"promote": self.promote, "reason": self.reason}


def decide(
    comparisons: Mapping[str, tuple[Metrics, Metrics]],
    margin: float,
    metric: str = GATE_METRIC,
) -> GateDecision:
    """``comparisons``: baseline name -> (candidate's metrics, baseline's metrics) on the
    same held-out plays. Promote when ``candidate > baseline * (1 + margin)`` for every
    baseline (so against a baseline scoring 0, anything above 0 passes)."""
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin}")
    if not comparisons:
        raise ValueError("no baseline to compare the candidate with")
    verdicts, failed = [], []
    for name, (candidate, baseline) in comparisons.items():
        needed = baseline[metric] * (1 + margin)
        verdicts.append(
            f"{name} {baseline[metric]:.4f} against {candidate[metric]:.4f} (needs > {needed:.4f})"
        )
        if not candidate[metric] > needed:
            failed.append(name)
    against = "; ".join(verdicts)
    if failed:
        return GateDecision(
            False,
            f"{metric} does not beat {' and '.join(failed)} by the {margin:.0%} margin: {against}",
        )
    return GateDecision(
        True, f"{metric} beats every baseline by the {margin:.0%} margin: {against}"
    )
