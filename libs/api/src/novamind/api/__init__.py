"""Novamind v1 contracts: generated from proto/ by `python -m novamind.devtools.protogen`. Do not edit."""
