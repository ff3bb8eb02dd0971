"""Adapters at the edge of the pharmacogenomics service (gRPC API, Kafka, model runtime)."""
