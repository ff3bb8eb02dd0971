"""The gRPC face of the correlation service (``novamind.api.correlation.v1.CorrelationService``).

RPCs not overridden here answer NOT_IMPLEMENTED with an ErrorDetail through the core interceptor.
"""

from __future__ import annotations

from novamind.api.correlation.v1 import correlation_pb2_grpc


class CorrelationServicer(correlation_pb2_grpc.CorrelationServiceServicer):
    """Serves ``CorrelationService``."""
