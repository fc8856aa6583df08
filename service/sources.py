"""The service's production sources: the model registry and Silver track statistics, read
without a JVM (numpy arrays from the registry, Delta through delta-rs)."""

from __future__ import annotations

from datetime import date, timedelta

from ml import registry
from ml.model import AlsModel
from tunelake.clients import delta_table
from tunelake.settings import Settings

POPULARITY_TABLE = "track_daily_stats"
# Silver's user dimension (SCD2 from PostgreSQL's CDC); spark_jobs.silver.privacy names it
# too, but the service does not import Spark jobs.
DIM_USER = "dim_user"


class RegistrySource:
    """The current model of ``s3://<models bucket>/als/``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def current(self) -> str | None:
        return registry.current(self._settings)

    def load(self, version: str) -> AlsModel:
        return registry.load(self._settings, version)


def silver_popularity(settings: Settings):
    """A loader of (track_id, plays) over the last ``popular_window_days`` days of Silver
    ``track_daily_stats`` that hold data (so a lake of years-old history still has a
    most-popular list). Before Silver's first publish, the catalog the traffic generator
    seeds (None when there is none either)."""
    from deltalake.exceptions import TableNotFoundError

    from ingestion.catalog import read_catalog

    def load() -> list[tuple[str, float]] | None:
        try:
            table = delta_table(settings, settings.silver_path(POPULARITY_TABLE))
        except TableNotFoundError:
            catalog = read_catalog(settings)
            return None if catalog is None else [(t.track_id, t.popularity) for t in catalog]
        days = [date.fromisoformat(p["date"]) for p in table.partitions()]
        if not days:
            return []
        since = max(days) - timedelta(days=settings.popular_window_days - 1)
        stats = table.to_pyarrow_table(
            partitions=[("date", ">=", since.isoformat())], columns=["track_id", "plays"]
        )
        totals = stats.group_by("track_id").aggregate([("plays", "sum")])
        ranked = zip(totals["track_id"].to_pylist(), totals["plays_sum"].to_pylist(), strict=True)
        return [(track, float(plays)) for track, plays in ranked if plays]

    return load


def silver_deleted_users(settings: Settings):
    """A loader of the ids of users deleted in PostgreSQL: Silver ``dim_user``'s current
    rows that are deletions (empty before the table exists)."""
    import pyarrow.compute as pc
    from deltalake.exceptions import TableNotFoundError

    def load() -> frozenset[str]:
        try:
            table = delta_table(settings, settings.silver_path(DIM_USER))
        except TableNotFoundError:
            return frozenset()
        rows = table.to_pyarrow_table(columns=["user_id", "is_current", "is_deleted"])
        deleted = rows.filter(pc.and_(rows["is_current"], rows["is_deleted"]))
        return frozenset(deleted["user_id"].to_pylist())

    return load
