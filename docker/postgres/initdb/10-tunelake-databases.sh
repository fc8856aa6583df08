#!/bin/bash
# First start of the compose `postgres` service only (the image runs this once, on an
# empty data directory): the databases besides POSTGRES_DB that tunelake needs, owned by
# POSTGRES_USER. The local stack's PostgresService.bootstrap does the same.
set -euo pipefail

for db in "${TUNELAKE_REGISTRY_DB:?}" "${AIRFLOW_DB:?}"; do
  if [[ "$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '${db}'")" != "1" ]]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
      -c "CREATE DATABASE \"${db}\" OWNER \"${POSTGRES_USER}\""
  fi
done
