"""The gRPC face of the pat service (``novamind.api.actigraphy.v1.ActigraphyService``).

RPCs not overridden here answer NOT_IMPLEMENTED with an ErrorDetail through the core interceptor.
"""

from __future__ import annotations

from novamind.api.actigraphy.v1 import actigraphy_pb2_grpc


class ActigraphyServicer(actigraphy_pb2_grpc.ActigraphyServiceServicer):
    """Serves ``ActigraphyService``."""
