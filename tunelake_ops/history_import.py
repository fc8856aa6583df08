"""Bulk import of listening history: a file of plays -> the listens topic, as the API would.

Input: CSV, JSON lines or Parquet with columns ``user_id``, ``track_id``, ``played_at``
(ISO-8601 with an offset, or a timestamp with a time zone), ``ms_played``, and optionally
``context`` and ``source_id`` (the play's id in the system it comes from).

Each row is checked by the API's own request models (``service.models``), so a row the API
would refuse with a 422 is refused here with the same reason. Its ``event_id`` is the one
the API derives from a listen's content (``service.events``), or from its ``source_id``
when the file has one: the same play imported twice, or imported and also posted, is one
event. Accepted rows go to the topic the API writes, through the same acknowledged
producer, so Bronze lands them exactly once (quarantining what its rules refuse) and Silver
keeps one row per event id.

A re-run adds nothing: event ids already in Bronze are counted as duplicates and not sent
again. (Ids sent but not yet landed, if Bronze lags, are sent again; Silver still keeps
one row per id.) The API stays for live traffic, with its rate limits.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from ingestion.producer import EventProducer
from ingestion.streams import STREAMS, Stream
from service.events import derived_event_id, listen_events
from service.models import ExternalId, ListenIn
from tunelake.clients import delta_table
from tunelake.settings import Settings

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user_id", "track_id", "played_at", "ms_played")
OPTIONAL_COLUMNS = ("context", "source_id")
FORMATS = {
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".parquet": "parquet",
}
BATCH_ROWS = 10_000


class ImportFileError(ValueError):
    """The file cannot be imported at all (format, missing columns); no row was sent."""


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    published: int = 0
    duplicates_in_file: int = 0
    already_in_lake: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImportFileError(
            f"{path.name}: unknown format {path.suffix!r}; use .csv, .jsonl (JSON lines) or "
            ".parquet"
        ) from None


def read_batches(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[list[dict]]:
    """The file's rows, ``batch_rows`` at a time, as dicts of the known columns. CSV
    columns stay text: the API's models parse them, as they parse a JSON body."""
    kind = file_format(path)
    if kind == "csv":
        from pyarrow import csv

        names = csv.open_csv(path).schema.names
        _check_columns(path, names)
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=1 << 22),
            convert_options=csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
            ),
        )
        batches: Iterator[pa.RecordBatch] = iter(reader)
    elif kind == "json":
        # Parsed as the API parses a body (pyarrow would turn ISO times into naive ones).
        yield from _json_lines(path, batch_rows)
        return
    else:
        from pyarrow import parquet

        parquet_file = parquet.ParquetFile(path)
        _check_columns(path, parquet_file.schema_arrow.names)
        batches = parquet_file.iter_batches(batch_rows)
    for batch in batches:
        wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in batch.schema.names]
        rows = batch.select(wanted).to_pylist()
        played_at = batch.schema.field("played_at").type
        if pa.types.is_timestamp(played_at) and played_at.tz is not None:
            # pyarrow hands back the instants as naive datetimes in UTC: say so, or the
            # API's rule refuses them as times without an offset (as it does naive columns).
            for row in rows:
                if row["played_at"] is not None and row["played_at"].tzinfo is None:
                    row["played_at"] = row["played_at"].replace(tzinfo=UTC)
        yield rows


def _json_lines(path: Path, batch_rows: int) -> Iterator[list[dict]]:
    wanted = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
    batch: list[dict] = []
    checked = False
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFileError(f"{path.name}, line {number}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ImportFileError(f"{path.name}, line {number}: not a JSON object")
            if not checked:
                _check_columns(path, list(row))
                checked = True
            batch.append({c: row.get(c) for c in wanted})
            if len(batch) == batch_rows:
                yield batch
                batch = []
    if batch:
        yield batch


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ImportFileError(
            f"{path.name}: missing column(s) {', '.join(missing)}; a history file has "
            f"{', '.join(REQUIRED_COLUMNS)} (and optionally {', '.join(OPTIONAL_COLUMNS)})"
        )


def refusal_reason(error: ValidationError) -> str:
    """One reason per row, as the API's 422 words it: the first failing field and why."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"


class _ImportedUser(BaseModel):
    """The user id rule of the API's ``/users/{user_id}`` path."""

    user_id: ExternalId


def to_event(row: dict, now: datetime) -> dict:
    """The listens event of one row, or raises ValidationError as the API would."""
    user_id = _ImportedUser.model_validate({"user_id": row["user_id"]}).user_id
    listen = ListenIn.model_validate(
        {k: row.get(k) for k in ("track_id", "played_at", "ms_played", "context")}
    )
    [event] = listen_events(user_id, [listen], now)
    if row.get("source_id"):
        event["event_id"] = derived_event_id("import", user_id, row["source_id"])
    return event


def _events(path: Path, now: datetime) -> Iterator[list[dict | ValidationError]]:
    for rows in read_batches(path):
        batch: list[dict | ValidationError] = []
        for row in rows:
            try:
                batch.append(to_event(row, now))
            except ValidationError as error:
                batch.append(error)
        yield batch


def ids_in_bronze(settings: Settings, candidates: set[str], first: datetime, last: datetime):
    """Which of ``candidates`` (plays between ``first`` and ``last``) the listens Bronze
    table already holds. Only Bronze rows of that period are read."""
    import pyarrow.dataset as ds
    from deltalake.exceptions import TableNotFoundError

    if not candidates:
        return set()
    uri = settings.bronze_path(STREAMS[Stream.LISTENS].topic(settings))
    try:
        table = delta_table(settings, uri)
    except TableNotFoundError:
        return set()
    played_at = ds.field("played_at")
    period = (played_at >= pa.scalar(first, pa.timestamp("us", "UTC"))) & (
        played_at <= pa.scalar(last, pa.timestamp("us", "UTC"))
    )
    landed = table.to_pyarrow_dataset().to_table(columns=["event_id"], filter=period)
    return candidates & set(landed.column("event_id").to_pylist())


Progress = Callable[[ImportSummary], None]


def import_listens(
    settings: Settings,
    path: Path,
    *,
    dry_run: bool = False,
    progress: Progress = lambda summary: None,
) -> ImportSummary:
    """Validate, dedupe and publish the file's plays; returns what happened to each row.

    Two passes over the file, so memory holds event ids, not events: the first checks every
    row and finds the ids Bronze already holds; the second sends the rest, a batch at a time.
    """
    summary = ImportSummary()
    now = datetime.now(UTC)
    seen: set[str] = set()
    first, last = None, None
    for batch in _events(path, now):
        for event in batch:
            summary.rows += 1
            if isinstance(event, ValidationError):
                summary.refused[refusal_reason(event)] += 1
            elif event["event_id"] in seen:
                summary.duplicates_in_file += 1
            else:
                seen.add(event["event_id"])
                first = min(first or event["played_at"], event["played_at"])
                last = max(last or event["played_at"], event["played_at"])
        progress(summary)
    summary.accepted = len(seen)
    landed = ids_in_bronze(settings, seen, first, last)
    summary.already_in_lake = len(landed)
    if dry_run or len(landed) == len(seen):
        return summary
    sent = set(landed)
    producer = EventProducer(settings)
    try:
        producer.register_schemas()
        for batch in _events(path, now):
            events = [e for e in batch if isinstance(e, dict) and e["event_id"] not in sent]
            if not events:
                continue
            # The file's duplicate rows share their id: send each id once.
            events = list({e["event_id"]: e for e in events}.values())
            summary.published += producer.publish(Stream.LISTENS, events)
            sent.update(e["event_id"] for e in events)
            progress(summary)
    finally:
        producer.close()
    log.info(
        "imported %s: %d rows, %d published, %d already in the lake, %d duplicates, %d refused",
        path.name,
        summary.rows,
        summary.published,
        summary.already_in_lake,
        summary.duplicates_in_file,
        summary.refused_total,
    )
    return summary
