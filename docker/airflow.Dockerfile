# syntax=docker/dockerfile:1
# Airflow 3.3 with tunelake installed and the DAGs baked in (no git-sync, no DAG volume):
# the image that the official Airflow chart (KubernetesExecutor) and compose both run.
# In compose its Spark tasks spark-submit (client mode: the driver runs here), so it also
# carries a JRE 17 and the extra jars of jvm/spark/pom.xml; on Kubernetes its tasks create
# SparkApplications on the Spark image instead (TUNELAKE_SPARK_DEPLOY=kubernetes).
#   docker build -f docker/airflow.Dockerfile -t tunelake/airflow .

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# --- jars: the POM the Spark image and the local stack resolve ---------------------------
FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jvm/spark/pom.xml pom.xml
RUN --mount=type=cache,target=/root/.m2 \
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/jars

# --- requirements: uv.lock as a hashed requirements file, and the project as a wheel -----
FROM python:3.11.14-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY . /src
RUN uv export --frozen --no-dev --extra airflow --no-emit-project \
      --format requirements.txt -o /dist/requirements.txt \
 && uv build --wheel --out-dir /dist

# --- runtime ----------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11 AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
USER 0:0
# spark-submit's JVM. The JRE's post-install step needs the man directory slim images leave
# out; the version comes from the base image's Debian release (see spark.Dockerfile).
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java
ENV JAVA_HOME=/opt/java
USER 50000:0
# The base image installs Python packages for its `airflow` user; the lock pins
# apache-airflow to the base image's version, so this only adds tunelake's dependencies.
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir --require-hashes -r /tmp/dist/requirements.txt \
 && pip install --no-cache-dir --no-deps /tmp/dist/*.whl
# The driver's extra jars go beside pyspark's own, minus those pyspark ships (the local
# stack's rule, tunelake_ops.stack.install.artifact_name), so spark-submit needs no --jars.
COPY --from=jars /build/jars /tmp/extra-jars
RUN python -c "import shutil, sys, pyspark; \
from pathlib import Path; \
from tunelake_ops.stack.install import artifact_name, pyspark_jar_names; \
shipped = pyspark_jar_names(); \
[shutil.copy(jar, Path(pyspark.__file__).parent / 'jars') \
 for jar in sorted(Path(sys.argv[1]).glob('*.jar')) if artifact_name(str(jar)) not in shipped]" \
      /tmp/extra-jars
COPY --chown=airflow:root dags/ /opt/airflow/dags/
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
# The base image's unprivileged `airflow` user (uid 50000, group root), by number.
USER 50000:0
