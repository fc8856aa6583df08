#!/bin/bash
# Deploy one environment and check it; if anything fails after the first upgrade, every
# release this run upgraded goes back to the revision it had before.
#   scripts/deploy-release.sh staging|production IMAGE_PREFIX TAG
# e.g. scripts/deploy-release.sh staging ghcr.io/acme 3f2c1d0
# Order: 1. the tunelake chart (its ConfigMaps are what Airflow's values load, and its Role
# is what Airflow's Spark tasks need); 2. Airflow (official chart, our image); 3. `helm
# test tunelake`; 4. scripts/smoke-test.sh through a port-forward (service, Bronze RUNNING,
# Bronze fresh).
# Needs helm (v4), kubectl, python3 and a KUBECONFIG for the target cluster, and in the
# environment AIRFLOW_CHART_REPO and AIRFLOW_CHART_VERSION (the official Airflow chart's
# repository and pinned version) and SMOKE_API_KEY. RELEASE, AIRFLOW_RELEASE and NAMESPACE
# default to tunelake, airflow and tunelake. Used by .github/workflows/deploy.yml; runs the
# same by hand.
set -euo pipefail

usage="usage: deploy-release.sh staging|production IMAGE_PREFIX TAG"
environment="${1:?$usage}"
image_prefix="${2:?$usage}"
tag="${3:?$usage}"
release="${RELEASE:-tunelake}"
airflow_release="${AIRFLOW_RELEASE:-airflow}"
namespace="${NAMESPACE:-tunelake}"
airflow_chart_repo="${AIRFLOW_CHART_REPO:?set AIRFLOW_CHART_REPO (the official Airflow chart repository)}"
airflow_chart_version="${AIRFLOW_CHART_VERSION:?set AIRFLOW_CHART_VERSION (a pinned chart version)}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$repo_root/deploy/helm/tunelake"
values="$chart/values-$environment.yaml"
local_port="${SMOKE_LOCAL_PORT:-18000}"

if [[ ! -f "$values" ]]; then
  echo "error: no values file for environment '$environment' ($values)" >&2
  exit 64
fi

# The deployed revision of a release before this run touches it; empty if it has none.
deployed_revision() {
  helm history "$1" --namespace "$namespace" --max 20 --output json 2>/dev/null \
    | python3 -c 'import json, sys; print(max([r["revision"] for r in json.load(sys.stdin) if r["status"] == "deployed"], default=""))' \
    || true
}

# "release=revision" of every release this run upgraded, in upgrade order.
upgraded=()

rollback_all() {
  echo "deploy failed ($1): rolling back what this run upgraded" >&2
  local index entry name revision status=0
  for ((index = ${#upgraded[@]} - 1; index >= 0; index--)); do
    entry="${upgraded[index]}"
    name="${entry%%=*}"
    revision="${entry#*=}"
    if [[ -z "$revision" ]]; then
      echo "  $name: first install, no earlier revision to go back to (left as is)" >&2
      continue
    fi
    echo "  $name: back to revision $revision" >&2
    helm rollback "$name" "$revision" --namespace "$namespace" --wait --timeout 10m || status=1
  done
  if ((status != 0)); then
    echo "a rollback failed: see helm history" >&2
  fi
  exit 1
}

echo "deploying $release ($environment) with images $image_prefix/tunelake-*:$tag"
upgraded+=("$release=$(deployed_revision "$release")")
helm upgrade --install "$release" "$chart" \
  --namespace "$namespace" \
  --values "$values" \
  --set-string "image.registry=$image_prefix" \
  --set-string "image.tag=$tag" \
  --rollback-on-failure \
  --wait \
  --timeout 10m \
  || rollback_all "$release upgrade"

echo "deploying $airflow_release (Airflow chart $airflow_chart_version) with $image_prefix/tunelake-airflow:$tag"
helm repo add apache-airflow "$airflow_chart_repo" --force-update >/dev/null \
  || rollback_all "helm repo add"
upgraded+=("$airflow_release=$(deployed_revision "$airflow_release")")
helm upgrade --install "$airflow_release" apache-airflow/airflow \
  --version "$airflow_chart_version" \
  --namespace "$namespace" \
  --values "$repo_root/deploy/values/airflow.yaml" \
  --set-string "images.airflow.repository=$image_prefix/tunelake-airflow" \
  --set-string "images.airflow.tag=$tag" \
  --set-string "defaultAirflowRepository=$image_prefix/tunelake-airflow" \
  --set-string "defaultAirflowTag=$tag" \
  --rollback-on-failure \
  --wait \
  --timeout 15m \
  || rollback_all "$airflow_release upgrade"

helm test "$release" --namespace "$namespace" --timeout 5m || rollback_all "helm test"

kubectl --namespace "$namespace" port-forward "svc/$release-service" "$local_port:8000" >/dev/null &
forward_pid=$!
trap 'kill "$forward_pid" 2>/dev/null || true' EXIT
RELEASE="$release" NAMESPACE="$namespace" \
  "$repo_root/scripts/smoke-test.sh" "http://127.0.0.1:$local_port" \
  || rollback_all "smoke test"
helm history "$release" --namespace "$namespace" --max 3
helm history "$airflow_release" --namespace "$namespace" --max 3
