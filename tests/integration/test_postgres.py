from __future__ import annotations

import uuid

from tunelake.clients import postgres_connect


def test_wal_level_is_logical(postgres):
    with postgres_connect(postgres) as conn:
        assert conn.execute("SHOW wal_level").fetchone()[0] == "logical"


def test_a_pgoutput_slot_can_be_created(postgres):
    slot = f"it_{uuid.uuid4().hex[:8]}"
    with postgres_connect(postgres) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            row = conn.execute(
                "SELECT plugin, slot_type FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            ).fetchone()
            assert row == ("pgoutput", "logical")
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_up_created_the_databases(postgres):
    with postgres_connect(postgres, "postgres") as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {postgres.postgres_db, postgres.registry_db} <= names


def test_registry_keeps_its_schemas_in_postgres(postgres, registry):
    with postgres_connect(postgres, postgres.registry_db) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert "artifacts" in tables
