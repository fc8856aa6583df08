"""Record-level checks a decoded event must pass to enter Bronze (else: quarantine).

The checks are ``ingestion/validity.py``'s declaration rendered as Spark conditions: the
same bounds the API answers 422 for and the quality suites expect, so a record that breaks
one is quarantined with the reason here and never reaches the batch-level quality gate.

Each rule is ``(reason, condition that holds for a valid record)`` over the decoded
payload's columns. Decoding already enforced the Avro types; these catch values the types
cannot (negative durations, malformed ids, a play in 1999).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

from ingestion import validity
from ingestion.streams import Stream
from ingestion.validity import FieldRule, Instant, OneOf, Present, Text, Whole
from tunelake.settings import Settings, get_settings

Rule = tuple[str, Column]


def _latest() -> Column:
    seconds = int(validity.FUTURE_TOLERANCE.total_seconds())
    return F.expr(f"current_timestamp() + INTERVAL {seconds} SECONDS")


def _checks(rule: FieldRule, settings: Settings) -> list[tuple[str, Callable[[Column], Column]]]:
    """(reason, value -> holds) for ``rule``'s constraint; a null value is the null rule's."""
    bound = rule.constraint
    if isinstance(bound, Text):
        length = F.length
        checks = [
            lambda v: length(v) >= bound.min_length,
            *([lambda v: length(v) <= bound.max_length] if bound.max_length else []),
            *([lambda v: v.rlike(bound.pattern)] if bound.pattern else []),
        ]
        return [(validity.text_reason(rule), lambda v: _all(c(v) for c in checks))]
    if isinstance(bound, Whole):
        checks = [
            *([lambda v: v >= bound.minimum] if bound.minimum is not None else []),
            *([lambda v: v <= bound.maximum] if bound.maximum is not None else []),
        ]
        return [(validity.out_of_range_reason(rule), lambda v: _all(c(v) for c in checks))]
    if isinstance(bound, Instant):
        earliest = validity.earliest_event_time(settings)
        return [
            (validity.too_early_reason(rule, earliest), lambda v: v >= F.lit(earliest)),
            (validity.too_late_reason(rule), lambda v: v <= _latest()),
        ]
    if isinstance(bound, OneOf):
        return [(validity.not_one_of_reason(rule), lambda v: v.isin(list(bound.values)))]
    if isinstance(bound, Present):
        return []
    raise TypeError(f"no Spark rendering of {bound!r}")


def _all(conditions) -> Column:
    result = F.lit(True)
    for condition in conditions:
        result = result & condition
    return result


def _rendered(rule: FieldRule, settings: Settings) -> list[Rule]:
    checks = [(validity.null_reason(rule), lambda v: v.isNotNull())] if rule.required else []
    checks += [
        (reason, lambda v, holds=holds: v.isNull() | holds(v))
        for reason, holds in _checks(rule, settings)
    ]
    if rule.within is None:
        return [(reason, holds(F.col(rule.name))) for reason, holds in checks]
    array = F.col(rule.within)
    return [(reason, array.isNull() | _each(array, rule.name, holds)) for reason, holds in checks]


def _each(array: Column, field: str, holds: Callable[[Column], Column]) -> Column:
    # forall's lambda must take exactly one argument (it inspects the signature).
    return F.forall(array, lambda item: holds(item[field]))


def rules_for(stream: Stream, settings: Settings | None = None) -> list[Rule]:
    """Every rule of ``stream`` (earliest event time: ``settings``, else the process's)."""
    if stream not in validity.EVENT_RULES:
        raise ValueError(f"no rules for {stream}")
    settings = settings or get_settings()
    return [
        rendered for rule in validity.EVENT_RULES[stream] for rendered in _rendered(rule, settings)
    ]
