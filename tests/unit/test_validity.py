"""The one declaration of a valid event: bounds as data, in step with the Avro schemas."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from ingestion import validity
from ingestion.schemas import load_schema
from ingestion.streams import STREAMS, Stream
from ingestion.validity import EVENT_RULES, Instant, OneOf, TimeBounds, Whole, rule_of
from tunelake.settings import Settings

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PLAYED_AT = rule_of(Stream.LISTENS, "played_at")


def test_the_earliest_event_time_is_midnight_utc_of_the_setting(monkeypatch):
    assert TimeBounds.at(Settings(_env_file=None), NOW).earliest == datetime(2000, 1, 1, tzinfo=UTC)
    monkeypatch.setenv("TUNELAKE_EARLIEST_EVENT_DATE", "2015-06-30")
    settings = Settings(_env_file=None)
    assert settings.earliest_event_date == date(2015, 6, 30)
    assert TimeBounds.at(settings, NOW).earliest == datetime(2015, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("played_at", "problem"),
    [
        (datetime(2000, 1, 1, tzinfo=UTC), None),
        (NOW + timedelta(minutes=4, seconds=59), None),
        (
            datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
            "played_at is before the earliest event time 2000-01-01T00:00:00Z "
            "(TUNELAKE_EARLIEST_EVENT_DATE)",
        ),
        (NOW + timedelta(minutes=6), "played_at is more than 5 minutes in the future"),
    ],
)
def test_time_bounds_are_the_earliest_date_and_five_minutes_ahead(played_at, problem):
    bounds = TimeBounds.at(Settings(_env_file=None), NOW)
    assert validity.instant_problem(PLAYED_AT, played_at, bounds) == problem


def test_listens_bounds_and_feedback_actions_are_declared_as_data():
    assert rule_of(Stream.LISTENS, "ms_played").constraint == Whole(0, 86_400_000)
    assert isinstance(PLAYED_AT.constraint, Instant)
    assert rule_of(Stream.RECOMMENDATIONS, "rank", within="items").constraint == Whole(1)
    assert rule_of(Stream.FEEDBACK, "action").constraint == OneOf(
        ("play", "skip", "like", "dislike")
    )
    assert rule_of(Stream.LISTENS, "track_id").constraint.max_length == 128
    assert not rule_of(Stream.LISTENS, "request_id").required


def test_feedback_actions_are_the_avro_enum_and_the_api_uses_them():
    from service.models import FeedbackAction

    [action] = [f for f in load_schema("feedback")["fields"] if f["name"] == "action"]
    assert [a.value for a in FeedbackAction] == action["type"]["symbols"]
    assert FeedbackAction is validity.FeedbackAction


@pytest.mark.parametrize("stream", list(Stream))
def test_every_rule_names_a_field_of_its_stream_schema(stream):
    fields = {f["name"]: f for f in load_schema(STREAMS[stream].schema_name)["fields"]}
    for rule in EVENT_RULES[stream]:
        if rule.within is None:
            assert rule.name in fields, rule
            nullable = isinstance(fields[rule.name]["type"], list)
            assert nullable == (not rule.required), rule
        else:
            items = fields[rule.within]["type"]["items"]["fields"]
            assert rule.name in {f["name"] for f in items}, rule


def test_the_declaration_and_the_api_models_need_no_pyspark():
    code = (
        "import sys, ingestion.validity, service.models; "
        "print(sorted(m for m in sys.modules if m.startswith('pyspark')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
