"""Adapters at the edge of the correlation service (gRPC API, Kafka, model runtime)."""
