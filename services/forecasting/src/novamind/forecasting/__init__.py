"""Novamind symptom forecasting service: multi-horizon quantile forecasts with calibrated intervals."""
