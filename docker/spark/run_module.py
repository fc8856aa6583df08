"""Run a tunelake job module as ``__main__``: the Spark Operator's main application file.

A SparkApplication names one Python file; tunelake's jobs are modules with a ``main()``
(``python -m spark_jobs.bronze.<job>``). This launcher takes the module name as its first
argument and runs it exactly as ``python -m`` would, with the remaining arguments.

    spark-submit local:///opt/tunelake/run_module.py spark_jobs.silver.build --date 2026-01-01
"""

from __future__ import annotations

import runpy
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1].startswith("-"):
        raise SystemExit("usage: run_module.py MODULE [ARGS...]")
    module = argv[1]
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv)
