"""Adapters of the gateway: GraphQL schema, gRPC clients of the back-end services."""
