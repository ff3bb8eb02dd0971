"""Novamind GraphQL gateway: one API for clinicians over the model services and the twin."""
