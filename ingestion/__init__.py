"""Producers and sources: Avro schemas, schema-registry client, Confluent wire codec."""
