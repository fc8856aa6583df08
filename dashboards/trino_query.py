"""The Trino datasource plugin's query (``trino-datasource``) as a grafana-foundation-sdk
dataquery, which the SDK does not ship.

Registered with the SDK's runtime on import, so a dashboard read back from JSON
(``Dashboard.from_json``) decodes its targets into ``TrinoQuery`` instead of an untyped bag.
The fields are the plugin's ``TrinoQuery``: ``rawSQL`` and ``format``.
"""

from __future__ import annotations

import enum
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PLUGIN_TYPE = "trino-datasource"


class Format(enum.IntEnum):
    """The plugin's result shapes (its ``FormatOptions``; stored as the number)."""

    TIME_SERIES = 0
    TABLE = 1


class TrinoQuery(cogvariants.Dataquery):
    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format: Format = Format.TABLE,
        datasource: DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = format
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "rawSQL": self.raw_sql,
            "format": int(self.format),
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            ref_id=data["refId"],
            raw_sql=data["rawSQL"],
            format=Format(data["format"]),
            datasource=DataSourceRef.from_json(data["datasource"])
            if "datasource" in data
            else None,
        )


class Trino(cogbuilder.Builder[TrinoQuery]):
    def __init__(self, sql: str, format: Format, datasource: DataSourceRef) -> None:
        self._internal = TrinoQuery(raw_sql=sql, format=format, datasource=datasource)

    def build(self) -> TrinoQuery:
        return self._internal


register_default_plugins()
cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=PLUGIN_TYPE, from_json_hook=TrinoQuery.from_json)
)
