"""Spark MLlib ALS: training-set building, training, evaluation, model registry on S3, serving."""
