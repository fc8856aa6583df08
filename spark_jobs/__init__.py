"""Spark jobs: ``common/`` (session factory), ``bronze/`` streaming and ``silver/`` batch jobs."""
