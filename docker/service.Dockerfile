# syntax=docker/dockerfile:1
# The recommendation service (FastAPI): the project and its locked dependencies.
#   docker build -f docker/service.Dockerfile -t tunelake/service .
# Runs `tunelake serve` as an unprivileged user, on all interfaces and the port of
# TUNELAKE_SERVICE_PORT (8000 by default); every setting comes from TUNELAKE_* variables at
# run time, never from the image.

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# --- build: a virtualenv at /opt/tunelake/.venv, exactly as uv.lock pins it -------------
FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/tunelake/.venv
WORKDIR /src
# Dependencies first (a layer that only changes with the lock): the base and the service
# group only (no Spark, Airflow or Great Expectations).
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --extra service --no-install-project
COPY . /src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra service --no-editable

# --- runtime ----------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 tunelake \
 && useradd --system --uid 10001 --gid tunelake --create-home --home-dir /home/tunelake tunelake
COPY --from=build /opt/tunelake/.venv /opt/tunelake/.venv
ENV PATH=/opt/tunelake/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/tunelake
USER 10001:10001
EXPOSE 8000
CMD ["tunelake", "serve", "--host", "0.0.0.0"]
