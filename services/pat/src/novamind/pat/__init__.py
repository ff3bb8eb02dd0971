"""Novamind PAT actigraphy service: device files to minute-level weeks, clinical sleep/circadian metrics and the Pretrained Actigraphy Transformer."""
