"""Small builders and fakes shared by test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingestion.producer import PublishError
from ingestion.streams import Stream

CATALOG = [("t-hit", 100.0), ("t-mid", 10.0), ("t-tail", 1.0)]


class RecordingPublisher:
    """Stands in for the Kafka producer in route tests; the real one is in integration."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[Stream, list[dict]]] = []
        self.fail = fail

    def publish(self, stream: Stream, events: list[dict]) -> int:
        if self.fail:
            raise PublishError("broker down")
        self.sent.append((stream, list(events)))
        return len(events)

    def ready(self) -> bool:
        return not self.fail


def make_listens(n: int, **overrides) -> dict:
    """A POST /listens body of ``n`` plays an hour ago; ``overrides`` apply to every play."""
    # Milliseconds: the event contract's precision, so posted and stored values compare equal.
    played_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    return {
        "listens": [
            {"track_id": f"t-{i}", "played_at": played_at, "ms_played": 1000 * i} | overrides
            for i in range(n)
        ]
    }
