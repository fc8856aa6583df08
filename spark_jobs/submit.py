"""The application file ``spark-submit`` runs: ``submit.py <tunelake command> [args]``.

Airflow's SparkSubmitOperator (and a Spark cluster) run every tunelake job through this
one file, e.g. ``spark-submit spark_jobs/submit.py silver stage --from 2026-11-25``.
"""

import sys

from tunelake.cli import app

if __name__ == "__main__":
    app(sys.argv[1:])
