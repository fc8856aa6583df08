"""dim_user's SCD2 on tiny Bronze change tables: history, deletes, resent changes, snapshots."""

from __future__ import annotations

from datetime import datetime

import pytest

from spark_jobs.silver import dim_user

BRONZE_CHANGES = (
    "user_id string, display_name string, country string, birth_year int, "
    "signup_time string, preferences string, updated_at string, __deleted string, "
    "cdc_op string, cdc_lsn long, cdc_source_ts_ms long"
)
SIGNUP = "2026-11-01T10:00:00.000000Z"
T0_MS = 1_796_000_000_000


def change(user, op, lsn, country="DE", name=None, deleted="false", offset_s=None):
    return (
        user,
        name or user,
        country,
        1990,
        SIGNUP,
        "{}",
        SIGNUP,
        "true" if op == "d" else deleted,
        op,
        lsn,
        T0_MS + 1000 * (offset_s if offset_s is not None else lsn),
    )


def build(spark, rows):
    bronze = spark.createDataFrame(rows, BRONZE_CHANGES)
    dim = dim_user.versions(dim_user.changes(bronze))
    return sorted(dim.collect(), key=lambda r: (r.user_id, r.change_lsn))


def at(lsn: int) -> datetime:
    return datetime.fromtimestamp((T0_MS + 1000 * lsn) / 1000)


def test_insert_and_updates_make_a_closed_history_and_one_current_row(spark):
    rows = build(
        spark,
        [change("ann", "c", 10), change("ann", "u", 20, "FR"), change("ann", "u", 30, "IT")],
    )
    assert [(r.country, r.valid_from, r.valid_to, r.is_current) for r in rows] == [
        ("DE", at(10), at(20), False),
        ("FR", at(20), at(30), False),
        ("IT", at(30), None, True),
    ]
    assert not any(r.is_deleted for r in rows)
    assert rows[0].signup_time == datetime(2026, 11, 1, 10, 0)


def test_a_delete_closes_the_current_row_marks_the_user_deleted_and_scrubs_the_profile(spark):
    rows = build(
        spark,
        [
            change("bob", "c", 10),
            change("bob", "u", 20, "FR"),
            change("bob", "d", 30, "FR"),
            change("cat", "c", 15),
        ],
    )
    bob = [r for r in rows if r.user_id == "bob"]
    assert [(r.valid_from, r.valid_to, r.is_current, r.is_deleted) for r in bob] == [
        (at(10), at(20), False, False),
        (at(20), at(30), False, False),
        (at(30), None, True, True),
    ]
    for column in dim_user.PROFILE_COLUMNS:
        assert {getattr(r, column) for r in bob} == {None}, column
    (cat,) = [r for r in rows if r.user_id == "cat"]
    assert (cat.country, cat.is_current, cat.is_deleted) == ("DE", True, False)


def test_an_id_created_again_after_a_delete_is_live_with_only_its_new_profile(spark):
    rows = build(
        spark,
        [change("dan", "c", 10), change("dan", "d", 20), change("dan", "c", 30, "ES")],
    )
    assert [(r.country, r.is_current, r.is_deleted) for r in rows] == [
        (None, False, False),
        (None, False, True),
        ("ES", True, False),
    ]


def test_resent_changes_and_a_re_snapshot_add_no_version(spark):
    resent = change("eve", "u", 20, "FR")
    rows = build(
        spark,
        [
            change("eve", "c", 10),
            resent,
            resent,  # Debezium sent it again after a Connect restart (same LSN and op)
            change("eve", "r", 40, "FR"),  # a new snapshot read: the same profile
        ],
    )
    assert [(r.country, r.change_lsn, r.is_current) for r in rows] == [
        ("DE", 10, False),
        ("FR", 20, True),
    ]


def test_check_refuses_a_user_with_two_current_rows(spark):
    rows = [change("fay", "c", 10, offset_s=5), change("fay", "u", 20, "FR", offset_s=5)]
    dim = dim_user.versions(dim_user.changes(spark.createDataFrame(rows, BRONZE_CHANGES)))
    with pytest.raises(dim_user.DimUserError, match="fay"):
        dim_user.check(dim)
