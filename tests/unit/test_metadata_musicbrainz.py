"""The MusicBrainz client against a local fake of ``/ws/2``: a real HTTP server in a thread
that records when each request arrived, and answers 429s, 5xx, slow and paged answers as
a test scripts them. Spacing and retries are measured at the server, so a limiter or a
backoff that does not wait fails here."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ingestion.metadata import MetadataSourceError, metadata_source
from ingestion.metadata.musicbrainz import IDS_PER_QUERY, MusicBrainzClient, user_agent
from ingestion.metadata.source import parse_recording
from tunelake.settings import Settings

# Arrival spacing can be this much under the client's spacing (a request delayed on its
# way by a loaded 2-core machine shortens the next gap); a limiter or a backoff that does
# not wait spaces requests a few ms apart, far below every bound here.
JITTER_S = 0.1


def recording(n: int) -> dict:
    """A recording as MusicBrainz's search answers it (fields as documented)."""
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "score": 100,
        "title": f"Song {n}",
        "length": 200_000 + n,
        "first-release-date": "1999-03-01",
        "artist-credit": [
            {"name": "Ann", "joinphrase": " feat. ", "artist": {"id": "a1", "name": "Ann"}},
            {"name": "Bo", "artist": {"id": "a2", "name": "Bo"}},
        ],
        "releases": [
            {"id": "r2", "title": "Greatest Hits", "date": "2005"},
            {"id": "r1", "title": "Debut", "date": "1999-03-01"},
        ],
        "tags": [{"count": 1, "name": "trip hop"}, {"count": 4, "name": "electronic"}],
    }


@dataclass
class Seen:
    at: float
    query: dict[str, str]
    user_agent: str


@dataclass
class FakeMusicBrainz:
    """Serves ``recordings`` to ``rid:(...)`` searches at most ``page_cap`` a page; each
    request first takes the next scripted behaviour: ("status", code, retry_after) or
    ("slow", seconds)."""

    recordings: list[dict]
    page_cap: int = 100
    script: deque = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, query: dict[str, str]) -> tuple[int, dict, dict]:
        if self.script:
            kind, *args = self.script.popleft()
            if kind == "status":
                code, retry_after = args
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return code, headers, {"error": "scripted"}
            time.sleep(args[0])  # "slow": then answer normally
        wanted = set(query["query"].removeprefix("rid:(").removesuffix(")").split(" OR "))
        found = [r for r in self.recordings if r["id"] in wanted]
        offset, limit = int(query.get("offset", 0)), min(int(query["limit"]), self.page_cap)
        page = {"count": len(found), "offset": offset, "recordings": found[offset : offset + limit]}
        return 200, {}, page

    def offsets(self) -> list[int]:
        return [int(s.query["offset"]) for s in self.seen]

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.seen, self.seen[1:], strict=False)]


@pytest.fixture
def fake() -> Iterator[tuple[FakeMusicBrainz, str]]:
    state = FakeMusicBrainz([recording(n) for n in range(7)])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.seen.append(Seen(time.monotonic(), query, self.headers["User-Agent"]))
            assert url.path == "/ws/2/recording" and query["fmt"] == "json"
            status, headers, body = state.answer(query)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            # A client that timed out has hung up.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}/ws/2"
    server.shutdown()
    server.server_close()


def client(url: str, **overrides) -> MusicBrainzClient:
    options = {"requests_per_second": 100.0, "timeout_s": 5.0, "backoff_s": 0.01} | overrides
    return MusicBrainzClient(url, "ops@tunelake.example", **options)


def ids(*numbers: int) -> list[str]:
    return [recording(n)["id"] for n in numbers]


def test_pages_through_a_search_until_its_count(fake):
    state, url = fake
    state.page_cap = 3
    with client(url) as mb:
        found = mb.fetch(ids(*range(7)))
    assert sorted(m.track_id for m in found) == sorted(ids(*range(7)))
    assert state.offsets() == [0, 3, 6]
    assert {s.query["limit"] for s in state.seen} == {"100"}


def test_one_request_a_second_by_default_spaced_at_the_server(fake):
    """Seven one-record pages at the default rate: every arrival a second after the last."""
    state, url = fake
    state.page_cap = 1
    with client(url, requests_per_second=1.0) as mb:
        mb.fetch(ids(0, 1, 2))
    assert len(state.seen) == 3
    assert min(state.gaps()) >= 1.0 - JITTER_S, state.gaps()


def test_a_faster_rate_is_honoured_too_and_every_request_names_tunelake_and_a_contact(fake):
    state, url = fake
    state.page_cap = 1
    with client(url, requests_per_second=5.0) as mb:
        assert len(mb.fetch(ids(*range(7)))) == 7
    assert len(state.seen) == 7
    assert min(state.gaps()) >= 0.2 - JITTER_S, state.gaps()
    agents = {s.user_agent for s in state.seen}
    assert agents == {user_agent("ops@tunelake.example")}
    (agent,) = agents
    assert agent.startswith("tunelake/") and agent.endswith("( ops@tunelake.example )")


def test_a_429_waits_its_retry_after_then_succeeds(fake):
    state, url = fake
    state.script.append(("status", 429, 1))
    with client(url) as mb:  # backoff 0.01 s: only Retry-After explains a 1 s gap
        found = mb.fetch(ids(4))
    assert [m.track_id for m in found] == ids(4)
    assert len(state.seen) == 2
    assert state.gaps()[0] >= 1.0 - JITTER_S


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_retried_with_backoff(fake, status):
    state, url = fake
    state.script.append(("status", status, None))
    with client(url, backoff_s=0.3) as mb:
        found = mb.fetch(ids(2))
    assert [m.title for m in found] == ["Song 2"]
    assert len(state.seen) == 2
    assert state.gaps()[0] >= 0.3 - JITTER_S


def test_backoff_doubles_and_gives_up_after_max_attempts(fake):
    state, url = fake
    state.script.extend([("status", 500, None)] * 3)
    with (
        client(url, backoff_s=0.2, max_attempts=3) as mb,
        pytest.raises(MetadataSourceError, match="failed 3 times; last: HTTP 500"),
    ):
        mb.fetch(ids(1))
    assert len(state.seen) == 3
    first, second = state.gaps()
    assert first >= 0.2 - JITTER_S and second >= 0.4 - JITTER_S
    assert second > first  # it doubles


def test_a_slow_answer_times_out_and_is_asked_again(fake):
    state, url = fake
    state.script.append(("slow", 3.0))
    began = time.monotonic()
    with client(url, timeout_s=0.3) as mb:
        found = mb.fetch(ids(3))
    assert [m.track_id for m in found] == ids(3)
    assert len(state.seen) == 2
    # The retry did not wait for the slow answer (3 s) to finish.
    assert time.monotonic() - began < 2.5


def test_an_always_slow_server_fails_the_fetch(fake):
    state, url = fake
    state.script.extend([("slow", 1.0)] * 2)
    with (
        client(url, timeout_s=0.2, max_attempts=2) as mb,
        pytest.raises(MetadataSourceError, match="ReadTimeout"),
    ):
        mb.fetch(ids(3))
    assert len(state.seen) == 2


def test_a_client_error_is_not_retried(fake):
    state, url = fake
    state.script.append(("status", 400, None))
    with client(url) as mb, pytest.raises(MetadataSourceError, match="refused recording"):
        mb.fetch(ids(0))
    assert len(state.seen) == 1


def test_ids_that_are_not_mbids_are_never_asked_and_batches_stay_small(fake):
    state, url = fake
    many = [f"00000000-0000-4000-8000-{n:012d}" for n in range(IDS_PER_QUERY + 1)]
    with client(url) as mb:
        # Generator ids, and an MBID not in its canonical (lower-case) form.
        assert mb.fetch(["trk-000001", "T-1", "ABCDEF00-0000-4000-8000-000000000000"]) == []
        assert len(state.seen) == 0
        assert len(mb.fetch(many)) == 7
    # 51 ids: two searches, neither naming more than IDS_PER_QUERY ids.
    assert [s.query["query"].count(" OR ") + 1 for s in state.seen] == [IDS_PER_QUERY, 1]


def test_a_search_answer_becomes_track_metadata():
    meta = parse_recording("trk-1", recording(5))
    assert meta.track_id == "trk-1" and meta.recording_mbid == recording(5)["id"]
    assert meta.artist == "Ann feat. Bo"
    assert meta.album == "Debut"  # the earliest release
    assert meta.genres == ("electronic", "trip hop")  # most voted first
    assert (meta.duration_ms, meta.release_year) == (200_005, 1999)
    assert json.loads(meta.response) == recording(5)


def test_a_lookup_answer_with_genres_and_no_release():
    answer = {"id": "x", "title": "T", "genres": [{"name": "jazz", "count": 2}], "tags": []}
    meta = parse_recording("x", answer)
    assert (meta.genres, meta.album, meta.artist, meta.release_year) == (
        ("jazz",),
        None,
        None,
        None,
    )
    with pytest.raises(MetadataSourceError, match="not a MusicBrainz recording"):
        parse_recording("y", {"title": "no id"})


def test_settings_choose_musicbrainz_with_their_url_rate_and_contact(fake):
    state, url = fake
    settings = Settings(
        metadata_source="musicbrainz",
        metadata_musicbrainz_url=url,
        metadata_contact="https://example.org/contact",
        metadata_requests_per_second=50,
    )
    with metadata_source(settings) as mb:
        assert isinstance(mb, MusicBrainzClient)
        assert len(mb.fetch(ids(0))) == 1
    assert state.seen[0].user_agent.endswith("( https://example.org/contact )")
    with pytest.raises(ValueError, match="contact"):
        metadata_source(settings.model_copy(update={"metadata_contact": " "}))
