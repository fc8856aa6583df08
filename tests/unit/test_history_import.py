"""Reading history files and turning their rows into the API's listen events (no Kafka:
the import end to end is tests/integration/test_history_import.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from service.events import listen_events
from service.models import ListenIn
from tunelake_ops.history_import import ImportFileError, read_batches, refusal_reason, to_event

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ROWS = [
    {
        "user_id": "u1",
        "track_id": "t1",
        "played_at": "2024-03-01T10:00:00+01:00",
        "ms_played": "1000",
    },
    {"user_id": "u2", "track_id": "t2", "played_at": "2024-03-02T10:00:00Z", "ms_played": "2000"},
]


def _write(path, kind: str, rows: list[dict]) -> None:
    if kind == "csv":
        header = list(rows[0])
        path.write_text(
            "\n".join([",".join(header), *(",".join(str(r[c]) for c in header) for r in rows)])
            + "\n"
        )
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        table = pa.table(
            {
                "user_id": [r["user_id"] for r in rows],
                "track_id": [r["track_id"] for r in rows],
                "played_at": pa.array(
                    [datetime.fromisoformat(r["played_at"]) for r in rows],
                    pa.timestamp("ms", "UTC"),
                ),
                "ms_played": pa.array([int(r["ms_played"]) for r in rows], pa.int64()),
            }
        )
        pq.write_table(table, path)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_every_format_gives_the_same_events_as_the_api(tmp_path, kind):
    path = tmp_path / f"history.{kind}"
    _write(path, kind, ROWS)

    [rows] = list(read_batches(path))
    events = [to_event(row, NOW) for row in rows]

    # What POST /users/{id}/listens publishes for the same plays, without an Idempotency-Key.
    expected = [
        listen_events(
            r["user_id"],
            [ListenIn.model_validate({k: v for k, v in r.items() if k != "user_id"})],
            NOW,
        )[0]
        for r in ROWS
    ]
    assert [e["event_id"] for e in events] == [e["event_id"] for e in expected]
    assert [(e["user_id"], e["track_id"], e["ms_played"]) for e in events] == [
        ("u1", "t1", 1000),
        ("u2", "t2", 2000),
    ]
    assert events[0]["played_at"] == datetime(2024, 3, 1, 9, tzinfo=UTC)


def test_a_source_id_names_the_event_instead_of_its_content():
    row = ROWS[0] | {"source_id": "lastfm:123"}
    same_content = to_event(ROWS[0], NOW)
    assert to_event(row, NOW)["event_id"] != same_content["event_id"]
    assert to_event(row, NOW)["event_id"] == to_event(row | {"ms_played": "5"}, NOW)["event_id"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"played_at": "2024-03-01T10:00:00"}, "played_at: Value error, must carry a UTC offset"),
        ({"ms_played": "-1"}, "ms_played: Input should be greater than or equal to 0"),
        ({"user_id": "a b"}, "user_id: String should match pattern"),
        ({"played_at": "1999-01-01T00:00:00Z"}, "played_at: played_at is before the earliest"),
    ],
)
def test_a_row_the_api_would_refuse_is_refused_with_its_reason(change, reason):
    with pytest.raises(ValidationError) as refused:
        to_event(ROWS[0] | change, NOW)
    assert refusal_reason(refused.value).startswith(reason)


def test_a_file_without_a_required_column_is_refused_whole(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("user_id,track_id,ms_played\nu1,t1,5\n")
    with pytest.raises(ImportFileError, match=r"missing column.*played_at"):
        list(read_batches(path))
    with pytest.raises(ImportFileError, match=r"unknown format '\.xlsx'"):
        list(read_batches(tmp_path / "history.xlsx"))
