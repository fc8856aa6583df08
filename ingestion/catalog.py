"""The track catalog seeded by the traffic generator: ids and popularity weights.

It is the service's most-popular fallback until Silver track statistics exist. Stored as
JSON lines at ``s3://<lakehouse>/<catalog_key>``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from tunelake.clients import s3_client
from tunelake.settings import Settings


@dataclass(frozen=True)
class CatalogTrack:
    track_id: str
    popularity: float
    genre: str


def write_catalog(settings: Settings, tracks: list[CatalogTrack]) -> None:
    body = "\n".join(json.dumps(asdict(t)) for t in tracks).encode()
    s3_client(settings).put_object(
        Bucket=settings.lakehouse_bucket, Key=settings.catalog_key, Body=body
    )


def read_catalog(settings: Settings) -> list[CatalogTrack] | None:
    """The catalog, or None when none was seeded yet."""
    try:
        obj = s3_client(settings).get_object(
            Bucket=settings.lakehouse_bucket, Key=settings.catalog_key
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    lines = obj["Body"].read().decode().splitlines()
    return [CatalogTrack(**json.loads(line)) for line in lines if line]
