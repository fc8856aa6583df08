"""Silver events and aggregates on tiny DataFrames: duplicates, late events, nulls, windows."""

from __future__ import annotations

from datetime import date, datetime

from spark_jobs.silver import aggregates, events

BRONZE_LISTEN = (
    "event_id string, event_time timestamp, user_id string, track_id string, "
    "played_at timestamp, ms_played long, context string, request_id string, "
    "ingested_at timestamp, partition int, offset long"
)
BRONZE_RECS = (
    "event_id string, event_time timestamp, request_id string, user_id string, "
    "model_version string, items array<struct<track_id:string,rank:int,score:double>>, "
    "ingested_at timestamp, partition int, offset long"
)
BRONZE_FEEDBACK = (
    "event_id string, event_time timestamp, user_id string, request_id string, "
    "track_id string, action string, ingested_at timestamp, partition int, offset long"
)
T0 = datetime(2026, 11, 20, 12, 0)


def at(hours: float) -> datetime:
    from datetime import timedelta

    return T0 + timedelta(hours=hours)


def make_listens(spark, rows):
    """rows: (event_id, user, track, played_at, ms, request_id[, ingested_at])."""
    full = [
        (e, at(0), u, t, p, ms, None, r, (rest[0] if rest else at(1)), 0, i)
        for i, (e, u, t, p, ms, r, *rest) in enumerate(rows)
    ]
    return events.listens(spark.createDataFrame(full, BRONZE_LISTEN))


def make_impressions(spark, rows):
    """rows: (request_id, user, served_at, [track ids in rank order])."""
    full = [
        (
            f"imp-{r}",
            served,
            r,
            u,
            "popularity",
            [(t, rank, 1.0 / rank) for rank, t in enumerate(tracks, 1)],
            served,
            0,
            i,
        )
        for i, (r, u, served, tracks) in enumerate(rows)
    ]
    return events.impressions(spark.createDataFrame(full, BRONZE_RECS))


def make_feedback(spark, rows):
    """rows: (event_id, user, request_id, track, action, given_at)."""
    full = [(e, g, u, r, t, a, g, 0, i) for i, (e, u, r, t, a, g) in enumerate(rows)]
    return events.feedback(spark.createDataFrame(full, BRONZE_FEEDBACK))


def outcomes_of(impressions, listens, feedback):
    plays = aggregates.attribute(listens, impressions)
    return aggregates.recommendation_outcomes(impressions, plays, feedback)


def by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_duplicate_events_keep_the_earliest_ingested_copy(spark):
    listens = make_listens(
        spark,
        [
            ("e1", "u1", "t1", at(0), 100, None, at(5)),
            ("e1", "u1", "t1", at(0), 999, None, at(2)),  # same event, landed twice
            ("e2", "u1", "t2", at(1), 200, None),
        ],
    ).collect()
    assert sorted((r.event_id, r.ms_played) for r in listens) == [("e1", 999), ("e2", 200)]


def test_events_are_dated_by_event_time_not_ingest_time(spark):
    late = make_listens(
        spark,
        [("e1", "u1", "t1", datetime(2026, 11, 2, 23, 59), 5, None, datetime(2026, 11, 26, 8, 0))],
    ).first()
    assert late.play_date == date(2026, 11, 2)


def test_impressions_explode_one_row_per_recommended_track(spark):
    rows = make_impressions(spark, [("r1", "u1", at(0), ["t1", "t2", "t3"])]).collect()
    assert [(r.track_id, r.rank) for r in sorted(rows, key=lambda r: r.rank)] == [
        ("t1", 1),
        ("t2", 2),
        ("t3", 3),
    ]
    assert {r.impression_date for r in rows} == {date(2026, 11, 20)}


# Hours after the list was served -> attributed? One request per case, one Spark job.
ATTRIBUTION_CASES = {-1: False, -0.05: True, 0.5: True, 23.9: True, 24.5: False}


def test_attribution_window(spark):
    cases = list(ATTRIBUTION_CASES.items())
    impressions = make_impressions(
        spark, [(f"r{i}", "u1", at(0), ["t1", "t2"]) for i in range(len(cases))]
    )
    listens = make_listens(
        spark,
        [(f"e{i}", "u1", "t1", at(hours), 100, f"r{i}") for i, (hours, _) in enumerate(cases)],
    )
    outcomes = by(
        outcomes_of(impressions, listens, make_feedback(spark, []).limit(0)).collect(),
        "request_id",
        "track_id",
    )
    assert {hours: outcomes[(f"r{i}", "t1")].played for i, (hours, _) in enumerate(cases)} == (
        ATTRIBUTION_CASES
    )
    assert not any(outcomes[(f"r{i}", "t2")].played for i in range(len(cases)))


def test_attribution_needs_the_same_user_track_and_request(spark):
    impressions = make_impressions(spark, [("r1", "u1", at(0), ["t1"])])
    listens = make_listens(
        spark,
        [
            ("e1", "u2", "t1", at(1), 100, "r1"),  # another user quoting the request
            ("e2", "u1", "t9", at(1), 100, "r1"),  # a track that was not recommended
            ("e3", "u1", "t1", at(1), 100, None),  # the track, but not via the list
        ],
    )
    [outcome] = outcomes_of(impressions, listens, make_feedback(spark, []).limit(0)).collect()
    assert outcome.played is False


def test_outcomes_carry_skips_and_likes(spark):
    impressions = make_impressions(spark, [("r1", "u1", at(0), ["t1", "t2", "t3"])])
    feedback = make_feedback(
        spark,
        [
            ("f1", "u1", "r1", "t1", "skip", at(0.1)),
            ("f2", "u1", "r1", "t2", "like", at(0.2)),
        ],
    )
    listens = make_listens(spark, [("e1", "u1", "t2", at(0.2), 100, "r1")])
    outcomes = by(outcomes_of(impressions, listens, feedback).collect(), "track_id")
    assert (outcomes[("t1",)].skipped, outcomes[("t1",)].played) == (True, False)
    assert (outcomes[("t2",)].liked, outcomes[("t2",)].played) == (True, True)
    assert (outcomes[("t3",)].skipped, outcomes[("t3",)].liked) == (False, False)
    assert outcomes[("t3",)].rank == 3


def test_track_daily_stats(spark):
    impressions = make_impressions(
        spark,
        [
            ("r1", "u1", at(0), ["t1", "t2"]),
            ("r2", "u2", at(0), ["t1"]),
        ],
    )
    listens = make_listens(
        spark,
        [
            ("e1", "u1", "t1", at(1), 1000, "r1"),  # from a recommendation
            ("e2", "u1", "t1", at(2), 500, None),
            ("e3", "u3", "t1", at(3), 250, None),
            ("e4", "u1", "t3", at(4), 100, None),
        ],
    )
    feedback = make_feedback(
        spark, [("f1", "u2", "r2", "t1", "skip", at(0.1)), ("f2", "u1", "r1", "t1", "like", at(1))]
    )
    stats = by(
        aggregates.track_daily_stats(
            aggregates.attribute(listens, impressions), impressions, feedback
        ).collect(),
        "date",
        "track_id",
    )
    t1 = stats[(date(2026, 11, 20), "t1")]
    assert (
        t1.impressions,
        t1.times_recommended,
        t1.plays,
        t1.plays_from_recommendations,
        t1.skips,
        t1.likes,
        t1.unique_listeners,
        t1.ms_played,
    ) == (2, 2, 3, 1, 1, 1, 2, 1750)
    t2 = stats[(date(2026, 11, 20), "t2")]  # recommended, never played: zeros, not nulls
    assert (t2.impressions, t2.plays, t2.unique_listeners, t2.ms_played) == (1, 0, 0, 0)
    t3 = stats[(date(2026, 11, 20), "t3")]
    assert (t3.impressions, t3.plays) == (0, 1)


def test_user_daily_stats(spark):
    impressions = make_impressions(
        spark, [("r1", "u1", at(0), ["t1", "t2"]), ("r2", "u1", at(1), ["t3"])]
    )
    listens = make_listens(
        spark,
        [
            ("e1", "u1", "t1", at(0.5), 1000, "r1"),
            ("e2", "u1", "t1", at(0.6), 1000, None),
            ("e3", "u1", "t4", at(0.7), 10, None),
        ],
    )
    [row] = aggregates.user_daily_stats(
        aggregates.attribute(listens, impressions), impressions
    ).collect()
    assert (
        row.plays,
        row.distinct_tracks,
        row.ms_played,
        row.recommendations_received,
        row.recommended_tracks_played,
    ) == (3, 2, 2010, 2, 1)


def interactions(listens, impressions, feedback):
    """All-time interactions of the given events, as a full rebuild computes them."""
    answered = outcomes_of(impressions, listens, feedback).where("played")
    return aggregates.user_track_interactions(listens, impressions, answered, feedback)


def test_user_track_interactions(spark):
    impressions = make_impressions(
        spark, [("r1", "u1", at(0), ["t1"]), ("r2", "u1", at(30), ["t1"])]
    )
    listens = make_listens(
        spark,
        [
            ("e1", "u1", "t1", at(1), 1000, "r1"),
            ("e2", "u1", "t1", at(40), 3000, None),
            ("e3", "u2", "t1", at(2), 7, None),
        ],
    )
    feedback = make_feedback(
        spark,
        [("f1", "u1", "r2", "t1", "skip", at(30.1)), ("f2", "u1", "r1", "t1", "dislike", at(2))],
    )
    rows = by(interactions(listens, impressions, feedback).collect(), "user_id", "track_id")
    u1 = rows[("u1", "t1")]
    assert (
        u1.play_count,
        u1.ms_played,
        u1.recommended_count,
        u1.recommended_and_played,
        u1.skips,
        u1.likes,
        u1.dislikes,
    ) == (2, 4000, 2, 1, 1, 0, 1)
    assert u1.last_played_at == at(40)
    assert rows[("u2", "t1")].recommended_count == 0


def test_null_ids_do_not_invent_attribution(spark):
    impressions = make_impressions(spark, [("r1", "u1", at(0), ["t1"])])
    listens = make_listens(spark, [("e1", "u1", "t1", at(1), 100, None)])
    [outcome] = outcomes_of(impressions, listens, make_feedback(spark, []).limit(0)).collect()
    assert outcome.played is False  # a null request_id never matches a list
    stats = aggregates.track_daily_stats(
        aggregates.attribute(listens, impressions), impressions, make_feedback(spark, []).limit(0)
    ).first()
    assert stats.plays_from_recommendations == 0


def test_interactions_grow_by_each_runs_increment_to_the_full_rebuild(spark):
    """Day two's increment (its new events, and lists its plays newly answered) added to
    day one's table equals the table rebuilt from both days."""
    day1 = {
        "impressions": [("r1", "u1", at(0), ["t1", "t2"])],
        "listens": [("e1", "u1", "t1", at(1), 1000, "r1"), ("e2", "u2", "t3", at(2), 5, None)],
        "feedback": [("f1", "u1", "r1", "t2", "skip", at(1))],
    }
    day2 = {  # a late play answering yesterday's list, and a new list
        "impressions": [("r2", "u1", at(25), ["t1"])],
        "listens": [
            ("e3", "u1", "t2", at(20), 700, "r1"),
            ("e4", "u1", "t1", at(26), 300, "r2"),
        ],
        "feedback": [("f2", "u1", "r2", "t1", "like", at(26))],
    }

    def frames(days):
        rows = {k: [r for d in days for r in d[k]] for k in ("impressions", "listens", "feedback")}
        return (
            make_listens(spark, rows["listens"]),
            make_impressions(spark, rows["impressions"]),
            make_feedback(spark, rows["feedback"]),
        )

    day1_l, day1_i, day1_f = frames([day1])
    new_l, new_i, new_f = frames([day2])
    all_l, all_i, all_f = frames([day1, day2])
    first = interactions(day1_l, day1_i, day1_f)
    answered = aggregates.newly_answered(
        outcomes_of(all_i, all_l, all_f), outcomes_of(day1_i, day1_l, day1_f)
    )
    increment = aggregates.user_track_interactions(new_l, new_i, answered, new_f)
    grown = aggregates.add_interactions(first, increment).unionByName(
        first.join(increment.select("user_id", "track_id"), ["user_id", "track_id"], "left_anti")
    )

    assert sorted(map(tuple, grown.collect())) == sorted(
        map(tuple, interactions(all_l, all_i, all_f).collect())
    )
    u1t2 = by(grown.collect(), "user_id", "track_id")[("u1", "t2")]
    assert (u1t2.play_count, u1t2.recommended_and_played, u1t2.skips) == (1, 1, 1)


def test_feedback_counts_toward_an_outcome_only_inside_the_window(spark):
    impressions = make_impressions(spark, [("r1", "u1", at(0), ["t1", "t2"])])
    feedback = make_feedback(
        spark,
        [("f1", "u1", "r1", "t1", "like", at(2)), ("f2", "u1", "r1", "t2", "like", at(30))],
    )
    outcomes = by(
        outcomes_of(impressions, make_listens(spark, []), feedback).collect(),
        "track_id",
    )
    assert (outcomes[("t1",)].liked, outcomes[("t2",)].liked) == (True, False)
