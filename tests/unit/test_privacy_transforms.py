"""What a privacy delete erases, on tiny DataFrames: from dim_user's history to the rows of
events and training tables it covers, and which deletions are still to process."""

from __future__ import annotations

from datetime import datetime, timedelta

from ml.training_set import without_erased
from spark_jobs.silver import privacy

DIM_USER = (
    "user_id string, display_name string, valid_from timestamp, valid_to timestamp, "
    "is_current boolean, is_deleted boolean"
)
T0 = datetime(2026, 11, 20, 12, 0)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def dim_user(spark):
    return spark.createDataFrame(
        [
            ("stays", "S", at(0), None, True, False),
            ("gone", "G", at(0), at(5), False, False),
            ("gone", None, at(5), None, True, True),
            # Deleted twice, created again after each deletion.
            ("back", None, at(0), at(2), False, False),
            ("back", None, at(2), at(3), False, True),
            ("back", None, at(3), at(6), False, False),
            ("back", None, at(6), at(7), False, True),
            ("back", "B", at(7), None, True, False),
        ],
        DIM_USER,
    )


def test_erasures_cover_everything_of_a_deleted_user_and_a_recreated_user_s_past(spark):
    erased = {r.user_id: r.erase_before for r in privacy.erasures(dim_user(spark)).collect()}
    assert erased == {"gone": None, "back": at(6)}


def test_keep_and_removed_split_rows_by_user_and_time(spark):
    rows = spark.createDataFrame(
        [("stays", at(1)), ("gone", at(1)), ("gone", at(9)), ("back", at(5)), ("back", at(8))],
        "user_id string, accepted_at timestamp",
    )
    erased = privacy.erasures(dim_user(spark))
    kept = {tuple(r) for r in privacy.keep(rows, erased, "accepted_at").collect()}
    gone = {tuple(r) for r in privacy.removed(rows, erased, "accepted_at").collect()}
    assert kept == {("stays", at(1)), ("back", at(8))}
    assert gone == {("gone", at(1)), ("gone", at(9)), ("back", at(5))}
    assert privacy.keep(rows, erased, "accepted_at").columns == rows.columns


def test_pending_deletions_are_those_without_an_audit_row(spark):
    deletions = privacy.deletions(dim_user(spark))
    assert {tuple(r) for r in deletions.collect()} == {
        ("gone", at(5)),
        ("back", at(2)),
        ("back", at(6)),
    }
    audit = spark.createDataFrame([("back", at(2))], "user_id string, deleted_at timestamp")
    assert {tuple(r) for r in privacy.pending(deletions, audit).collect()} == {
        ("gone", at(5)),
        ("back", at(6)),
    }
    assert privacy.pending(deletions, None).count() == 3


def test_training_leaves_out_erased_listens_and_the_interactions_of_users_deleted_now(spark):
    erased = privacy.erasures(dim_user(spark))
    interactions = spark.createDataFrame(
        [("stays", "t1", 2), ("gone", "t1", 5), ("back", "t2", 1)],
        "user_id string, track_id string, play_count long",
    )
    listens = spark.createDataFrame(
        [
            ("e1", "stays", at(1)),
            ("e2", "gone", at(1)),
            ("e3", "back", at(5)),
            ("e4", "back", at(8)),
        ],
        "event_id string, user_id string, accepted_at timestamp",
    )
    kept_interactions, kept_listens = without_erased(interactions, listens, erased)
    # Counts carry no time: a user created again keeps theirs (the privacy job recomputes them).
    assert {r.user_id for r in kept_interactions.collect()} == {"stays", "back"}
    assert {r.event_id for r in kept_listens.collect()} == {"e1", "e4"}
