# syntax=docker/dockerfile:1
# Spark for tunelake: Python 3.11 + the locked project (pyspark 4.1.x is its Spark
# distribution), OpenJDK 17, and the extra jars of jvm/spark/pom.xml (Delta, Kafka, Avro,
# s3a) baked into $SPARK_HOME/jars so no job resolves packages at start.
#   docker build -f docker/spark.Dockerfile --target spark   -t tunelake/spark .
#   docker build -f docker/spark.Dockerfile --target jupyter -t tunelake/jupyter .
# Used by compose (spark-master/-worker: `spark-class ...`) and by the Spark Operator on
# Kubernetes (entrypoint.sh understands the `driver` / `executor` commands Spark sends).

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# --- jars: the same POM the local stack resolves ----------------------------------------
FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jvm/spark/pom.xml pom.xml
RUN --mount=type=cache,target=/root/.m2 \
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/jars

# --- build: a virtualenv at /opt/tunelake/.venv, exactly as uv.lock pins it -------------
FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/tunelake/.venv
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --extra spark --no-install-project
COPY . /src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra spark --no-editable

# --- spark runtime ----------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS spark
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The JRE's post-install step needs the man directory that slim images leave out; procps
# gives Spark's scripts `ps`; tini reaps the driver's and executors' children. Versions
# come from the pinned Debian release (bookworm): its security updates replace older
# package versions in the archive, so pinning them would break rebuilds.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java
RUN groupadd --system --gid 10001 tunelake \
 && useradd --system --uid 10001 --gid tunelake --create-home --home-dir /home/tunelake tunelake
COPY --from=build /opt/tunelake/.venv /opt/tunelake/.venv
ENV JAVA_HOME=/opt/java \
    SPARK_HOME=/opt/tunelake/.venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/tunelake/.venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/tunelake/.venv/bin/python \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
ENV PATH=/opt/tunelake/.venv/bin:$SPARK_HOME/bin:$PATH
# Add only the jars Spark does not already ship (by artifact name, any version), the same
# rule as tunelake_ops.stack.install for the local stack: a second Hadoop client, an older
# Jackson or slf4j would shadow Spark's own.
COPY --from=jars /build/jars /tmp/extra-jars
RUN set -eu; \
    artifact() { sed -E 's/-[0-9]+\.[0-9][^/]*\.jar$//'; }; \
    find "$SPARK_HOME/jars" -name '*.jar' -printf '%f\n' | artifact > /tmp/spark-shipped.txt; \
    for jar in /tmp/extra-jars/*.jar; do \
      name="$(basename "$jar" | artifact)"; \
      if grep -qxF "$name" /tmp/spark-shipped.txt; then \
        echo "keeping Spark's own $name"; \
      else \
        cp "$jar" "$SPARK_HOME/jars/"; \
      fi; \
    done; \
    rm -rf /tmp/extra-jars /tmp/spark-shipped.txt
COPY --chmod=0755 docker/spark/entrypoint.sh /opt/tunelake/entrypoint.sh
COPY --chmod=0644 tunelake_ops/submit.py /opt/tunelake/submit.py
WORKDIR /home/tunelake
USER 10001:10001
ENTRYPOINT ["/opt/tunelake/entrypoint.sh"]
CMD ["spark-submit", "--version"]

# --- jupyter: the Spark image with the notebook group too (JupyterLab, from the lock) -----
FROM build AS build-notebook
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra spark --extra notebook --no-editable

FROM spark AS jupyter
COPY --from=build-notebook /opt/tunelake/.venv /opt/tunelake/.venv
COPY --chown=10001:10001 notebooks/ /home/tunelake/notebooks/
EXPOSE 8888
# The token comes from JUPYTER_TOKEN (a Kubernetes Secret), never from the image.
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/home/tunelake"]
