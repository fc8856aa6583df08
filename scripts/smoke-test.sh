#!/bin/bash
# Smoke test of a deployed recommendation service:
#   1. GET /readyz answers 200 (retried until SMOKE_TIMEOUT seconds, default 180);
#   2. GET /users/<id>/recommendations answers 200 with a JSON body, sent with the API key
#      in SMOKE_API_KEY (a read-only key is enough; every route but health, readiness,
#      metrics and docs needs one).
#   SMOKE_API_KEY=... scripts/smoke-test.sh BASE_URL [USER_ID]
set -euo pipefail

base_url="${1:?usage: smoke-test.sh BASE_URL [USER_ID]}"
base_url="${base_url%/}"
user_id="${2:-${SMOKE_USER_ID:-smoke-test-user}}"
api_key="${SMOKE_API_KEY:?set SMOKE_API_KEY to a key of the service (TUNELAKE_API_READ_KEYS or TUNELAKE_API_KEYS)}"
deadline=$((SECONDS + ${SMOKE_TIMEOUT:-180}))

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
if ! python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$body"; then
  echo "smoke: GET $url did not return JSON" >&2
  exit 1
fi
echo "smoke: GET $url 200 (JSON)"
