"""Type-2 slowly changing dimensions (``dim_track``, ``dim_user``) from a history of
observations of each key's state."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def versions(
    history: DataFrame, key: str, order: Sequence[str], state: Column, at: str
) -> DataFrame:
    """The rows of ``history`` whose ``state`` differs from the previous row of their
    ``key`` (in ``order``): an observation that changes nothing is no new version. Each
    keeps its columns and gets ``valid_from`` (its ``at``), ``valid_to`` (the next version's
    ``at``, null for the latest) and ``is_current``."""
    by_key = Window.partitionBy(key).orderBy(*order)
    previous = F.lag(state).over(by_key)
    changed = previous.isNull() | (previous != state)
    ends = F.lead(at).over(by_key)
    return (
        history.withColumn("_changed", changed)
        .where("_changed")
        .drop("_changed")
        .withColumn("valid_from", F.col(at))
        .withColumn("valid_to", ends)
        .withColumn("is_current", F.col("valid_to").isNull())
    )
