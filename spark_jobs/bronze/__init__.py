"""Bronze: Kafka topics landed exactly once in append-only Delta tables."""
