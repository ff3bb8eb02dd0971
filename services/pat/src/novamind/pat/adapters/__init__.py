"""Adapters at the edge of the pat service (gRPC API, Kafka, model runtime)."""
