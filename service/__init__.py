"""The FastAPI recommendation service: routes call services; ingestion producers and ml serving."""
