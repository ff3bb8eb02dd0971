"""The gRPC face of the forecasting service (``novamind.api.forecasting.v1.ForecastingService``).

RPCs not overridden here answer NOT_IMPLEMENTED with an ErrorDetail through the core interceptor.
"""

from __future__ import annotations

from novamind.api.forecasting.v1 import forecasting_pb2_grpc


class ForecastingServicer(forecasting_pb2_grpc.ForecastingServiceServicer):
    """Serves ``ForecastingService``."""
