"""Weekly (and on demand): retrain the recommendation model from Silver.

One Spark task runs the chain (training set -> hyper-parameter search -> train -> evaluate
on held-out plays -> register -> promote if it beats most-popular and the current model);
its log holds the metrics, the registry keeps them with the version (`tunelake model list`).
"""

from datetime import datetime

from airflow.sdk import DAG

from tunelake_ops.airflow_tasks import DEFAULT_ARGS, tunelake_spark_task

with DAG(
    dag_id="als_retrain",
    description="Train, evaluate and (if better) promote the ALS recommendation model",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tunelake", "model"],
):
    tunelake_spark_task("retrain", "retrain")
