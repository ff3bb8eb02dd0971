"""Adapters at the edge of the twin: gRPC API, Kafka ingestion, the SQL store."""
