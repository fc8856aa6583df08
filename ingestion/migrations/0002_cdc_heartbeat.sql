-- Debezium's heartbeat writes here every few seconds (heartbeat.action.query), so the
-- connector sees WAL positions of this database even while user_profiles is quiet and
-- advances its replication slot: otherwise the slot would hold back all the WAL that the
-- server's other databases (Airflow, the registry) write. Its changes are not emitted
-- (table.include.list names user_profiles only).
CREATE TABLE cdc_heartbeat (
    id      smallint PRIMARY KEY,
    beat_at timestamptz NOT NULL
);

ALTER PUBLICATION tunelake_user_profiles ADD TABLE cdc_heartbeat;
