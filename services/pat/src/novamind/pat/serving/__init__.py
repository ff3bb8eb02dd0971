"""How the PAT models are served beyond the ActigraphyService contract.

* :mod:`.model` — the :class:`~.model.InferenceModel` protocol every served model implements, and
  the adapter that presents the week-embedding engine through it;
* :mod:`.oip` — the Open Inference Protocol v2 (KServe / Triton data plane) over gRPC and REST;
* :mod:`.rest` — the ad-hoc REST mirror of the actigraphy API (FastAPI, OpenAPI), with jobs;
* :mod:`.drift_metrics` — input drift against the training reference, exported to Prometheus.
"""
