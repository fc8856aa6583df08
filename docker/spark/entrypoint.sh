#!/bin/bash
# Entry point of the tunelake Spark image.
#
# On Kubernetes, Spark (spark-submit in cluster mode, or the Spark Operator) starts pods of
# this image with the first argument `driver` or `executor` and describes the rest through
# SPARK_* environment variables; this script turns those into the JVM or spark-submit
# command line, the contract the upstream Spark image's entrypoint implements. Any other
# command (spark-class, spark-submit, python, jupyter, ...) runs as given.
set -euo pipefail

: "${SPARK_HOME:?SPARK_HOME must point at the Spark distribution}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
TINI="${TINI:-/usr/bin/tini}"

run() {
  # Under tini when it is there, so the JVM's and Python's children are reaped.
  if [[ -x "$TINI" ]]; then
    exec "$TINI" -s -- "$@"
  fi
  exec "$@"
}

# Spark passes executor JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...: keep their
# numeric order, and keep each value whole (an option may contain spaces).
java_opts=()
for index in $(compgen -v SPARK_JAVA_OPT_ | sed 's/^SPARK_JAVA_OPT_//' | sort -n); do
  name="SPARK_JAVA_OPT_${index}"
  java_opts+=("${!name}")
done

classpath="${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$SPARK_HOME/jars/*"
if [[ -n "${SPARK_EXTRA_CLASSPATH:-}" ]]; then
  classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
fi
if [[ -n "${HADOOP_CONF_DIR:-}" ]]; then
  classpath="$HADOOP_CONF_DIR:$classpath"
fi
if [[ -n "${SPARK_CONF_DIR:-}" ]]; then
  classpath="$SPARK_CONF_DIR:$classpath"
fi

case "${1:-}" in
  driver)
    shift
    run "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client \
      "$@"
    ;;
  executor)
    shift
    run "$JAVA" "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY:?}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL:?}" \
      --executor-id "${SPARK_EXECUTOR_ID:?}" \
      --cores "${SPARK_EXECUTOR_CORES:?}" \
      --app-id "${SPARK_APPLICATION_ID:?}" \
      --hostname "${SPARK_EXECUTOR_POD_IP:?}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME:?}" \
      "$@"
    ;;
  "")
    echo "usage: entrypoint.sh driver|executor [ARGS...] | COMMAND [ARGS...]" >&2
    exit 64
    ;;
  *)
    run "$@"
    ;;
esac
