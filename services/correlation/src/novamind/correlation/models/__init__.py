"""Learned models of the correlation service (PyTorch); the statistical engine lives in ``domain``."""
