"""The promotion gate: a candidate is promoted only when its NDCG@10 on the held-out plays
beats every baseline (most-popular, and the current model when there is one) by a
relative margin (``TUNELAKE_MODEL_PROMOTION_MARGIN``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATE_METRIC = "ndcg@10"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"promote": self.promote, "reason": self.reason}


def decide(
    candidate: Mapping[str, float],
    baselines: Mapping[str, Mapping[str, float]],
    margin: float,
    metric: str = GATE_METRIC,
) -> GateDecision:
    """Promote when ``candidate[metric] > baseline[metric] * (1 + margin)`` for every
    baseline (so against a baseline scoring 0, anything above 0 passes)."""
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin}")
    if not baselines:
        raise ValueError("no baseline to compare the candidate with")
    score = candidate[metric]
    verdicts, failed = [], []
    for name, metrics in baselines.items():
        needed = metrics[metric] * (1 + margin)
        verdicts.append(f"{name} {metrics[metric]:.4f} (needs > {needed:.4f})")
        if not score > needed:
            failed.append(name)
    against = ", ".join(verdicts)
    if failed:
        return GateDecision(
            False,
            f"{metric} {score:.4f} does not beat {' and '.join(failed)} by the "
            f"{margin:.0%} margin: {against}",
        )
    return GateDecision(True, f"{metric} {score:.4f} beats {against} by the {margin:.0%} margin")
