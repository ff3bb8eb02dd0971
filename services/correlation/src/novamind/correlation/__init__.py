"""Novamind biometric-symptom correlation service: lagged associations with honest significance."""
