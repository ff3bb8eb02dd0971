"""Novamind PAT actigraphy service: device files to minute-level weeks, clinical sleep and
circadian metrics, and the Pretrained Actigraphy Transformer."""
