"""Adapters at the edge of the forecasting service (gRPC API, Kafka, model runtime)."""
