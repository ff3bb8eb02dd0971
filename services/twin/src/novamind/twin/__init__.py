"""The twin service: the living model of each patient, fed by events, asked through gRPC."""
