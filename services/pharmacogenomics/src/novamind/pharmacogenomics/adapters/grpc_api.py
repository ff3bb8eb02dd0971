"""The gRPC face of the pharmacogenomics service (``PharmacogenomicsService``).

RPCs not overridden here answer NOT_IMPLEMENTED with an ErrorDetail through the core interceptor.
"""

from __future__ import annotations

from novamind.api.pharmacogenomics.v1 import pharmacogenomics_pb2_grpc


class PharmacogenomicsServicer(pharmacogenomics_pb2_grpc.PharmacogenomicsServiceServicer):
    """Serves ``PharmacogenomicsService``."""
