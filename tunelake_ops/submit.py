"""The application file ``spark-submit`` runs: ``submit.py <job> [args]`` (see ``jobs``).

Airflow's Spark tasks and the Helm chart's Spark applications run every job through this
one file, e.g. ``spark-submit tunelake_ops/submit.py silver stage --from 2026-11-25``.
"""

from tunelake_ops.jobs import main

if __name__ == "__main__":
    main()
