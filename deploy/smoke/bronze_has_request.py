"""Bronze freshness, checked inside the service pod by scripts/smoke-test.sh:

    kubectl exec -i deploy/tunelake-service -- python - REQUEST_ID TIMEOUT_S < this file

Exits 0 once the impression of the smoke test's own request (``request_id``) is in the
Bronze table of recommendation events, 1 if it is not there within ``TIMEOUT_S`` seconds.
The service image has what this needs: tunelake's settings (its pod's environment, with the
object store's credentials) and delta-rs to read the table without Spark.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta


def landed(request_id: str) -> bool:
    from tunelake.clients import delta_table
    from tunelake.settings import get_settings

    settings = get_settings()
    table = delta_table(settings, settings.bronze_path(settings.topic_recommendation_events))
    # Only the partitions a request made a moment ago can be in (midnight may lie between).
    today = datetime.now(UTC).date()
    days = [str(today - timedelta(days=1)), str(today)]
    rows = table.to_pyarrow_table(
        columns=["request_id"],
        filters=[("ingest_date", "in", days), ("request_id", "=", request_id)],
    )
    return rows.num_rows > 0


def main(argv: list[str]) -> int:
    request_id, timeout_s = argv[0], float(argv[1])
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if landed(request_id):
                print(f"bronze: impression {request_id} landed")
                return 0
        except Exception as exc:  # the table may not exist yet on a first deployment
            print(f"bronze: not readable yet ({exc})", file=sys.stderr)
        if time.monotonic() >= deadline:
            print(f"bronze: impression {request_id} not in Bronze after {timeout_s:.0f} s")
            return 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
