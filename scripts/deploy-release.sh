#!/bin/bash
# Deploy tunelake's chart to one environment, check it, and roll back if the check fails.
#   scripts/deploy-release.sh staging|production IMAGE_PREFIX TAG
# e.g. scripts/deploy-release.sh staging ghcr.io/acme 3f2c1d0
# Needs helm (v4), kubectl and a KUBECONFIG for the target cluster. RELEASE and NAMESPACE
# default to tunelake. Used by .github/workflows/deploy.yml; runs the same by hand.
set -euo pipefail

environment="${1:?usage: deploy-release.sh staging|production IMAGE_PREFIX TAG}"
image_prefix="${2:?usage: deploy-release.sh staging|production IMAGE_PREFIX TAG}"
tag="${3:?usage: deploy-release.sh staging|production IMAGE_PREFIX TAG}"
release="${RELEASE:-tunelake}"
namespace="${NAMESPACE:-tunelake}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$repo_root/deploy/helm/tunelake"
values="$chart/values-$environment.yaml"
local_port="${SMOKE_LOCAL_PORT:-18000}"

if [[ ! -f "$values" ]]; then
  echo "error: no values file for environment '$environment' ($values)" >&2
  exit 64
fi

echo "deploying $release ($environment) with images $image_prefix/tunelake-*:$tag"
helm upgrade --install "$release" "$chart" \
  --namespace "$namespace" \
  --values "$values" \
  --set-string "image.registry=$image_prefix" \
  --set-string "image.tag=$tag" \
  --rollback-on-failure \
  --wait \
  --timeout 10m

rollback() {
  echo "smoke test failed: rolling $release back to its previous revision" >&2
  helm rollback "$release" --namespace "$namespace" --wait --timeout 10m
  exit 1
}

helm test "$release" --namespace "$namespace" --timeout 5m || rollback

kubectl --namespace "$namespace" port-forward "svc/$release-service" "$local_port:8000" >/dev/null &
forward_pid=$!
trap 'kill "$forward_pid" 2>/dev/null || true' EXIT
"$repo_root/scripts/smoke-test.sh" "http://127.0.0.1:$local_port" || rollback
helm history "$release" --namespace "$namespace" --max 3
