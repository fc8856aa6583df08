#!/bin/bash
# Smoke test of a deployed platform:
#   1. GET /readyz answers 200 (retried until SMOKE_TIMEOUT seconds, default 180);
#   2. GET /users/<id>/recommendations answers 200 with JSON, sent with the API key in
#      SMOKE_API_KEY (a read-only key is enough) as a synthetic user: every id the smoke
#      test uses starts with `synthetic-`, the prefix Silver leaves out (docs/deploying.md),
#      so its impressions never count as a real listener's;
#   3. the Bronze streaming SparkApplication <release>-bronze-streaming is RUNNING;
#   4. Bronze is fresh: the impression of request 2 reaches the Bronze table within
#      SMOKE_BRONZE_TIMEOUT seconds (default 180), read inside the service pod.
#   SMOKE_API_KEY=... scripts/smoke-test.sh BASE_URL [USER_ID]
# Steps 3 and 4 use kubectl on the namespace NAMESPACE (default tunelake) and the release
# RELEASE (default tunelake).
set -euo pipefail

base_url="${1:?usage: smoke-test.sh BASE_URL [USER_ID]}"
base_url="${base_url%/}"
user_id="${2:-${SMOKE_USER_ID:-synthetic-smoke-$(date -u +%Y%m%dT%H%M%S)}}"
api_key="${SMOKE_API_KEY:?set SMOKE_API_KEY to a key of the service (TUNELAKE_API_READ_KEYS or TUNELAKE_API_KEYS)}"
release="${RELEASE:-tunelake}"
namespace="${NAMESPACE:-tunelake}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deadline=$((SECONDS + ${SMOKE_TIMEOUT:-180}))

if [[ "$user_id" != synthetic-* ]]; then
  echo "smoke: user id '$user_id' must start with 'synthetic-' (Silver leaves those out)" >&2
  exit 64
fi

until status="$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 5 "$base_url/readyz")" \
      && [[ "$status" == "200" ]]; do
  if ((SECONDS >= deadline)); then
    echo "smoke: $base_url/readyz did not answer 200 in time (last status: ${status:-none})" >&2
    exit 1
  fi
  sleep 3
done
echo "smoke: $base_url/readyz 200"

body="$(mktemp)"
trap 'rm -f "$body"' EXIT
url="$base_url/users/$user_id/recommendations"
status="$(curl --silent --output "$body" --write-out '%{http_code}' --max-time 30 \
  --header "X-API-Key: $api_key" "$url")" || status="none"
if [[ "$status" != "200" ]]; then
  echo "smoke: GET $url answered $status" >&2
  head -c 2000 "$body" >&2 || true
  exit 1
fi
if ! request_id="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["request_id"])' "$body")"; then
  echo "smoke: GET $url did not return JSON with a request_id" >&2
  exit 1
fi
echo "smoke: GET $url 200 (request $request_id)"

app="$release-bronze-streaming"
until state="$(kubectl --namespace "$namespace" get sparkapplication "$app" \
                 --output 'jsonpath={.status.applicationState.state}')" \
      && [[ "$state" == "RUNNING" ]]; do
  if ((SECONDS >= deadline)); then
    echo "smoke: SparkApplication $app is ${state:-unknown}, not RUNNING" >&2
    exit 1
  fi
  sleep 5
done
echo "smoke: SparkApplication $app RUNNING"

if ! kubectl --namespace "$namespace" exec -i "deploy/$release-service" -- \
       python - "$request_id" "${SMOKE_BRONZE_TIMEOUT:-180}" \
       < "$repo_root/deploy/smoke/bronze_has_request.py"; then
  echo "smoke: Bronze is not fresh: request $request_id did not land" >&2
  exit 1
fi
echo "smoke: Bronze fresh"
