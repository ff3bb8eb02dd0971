"""Novamind pharmacogenomics service: genotype to guideline-grade medication guidance."""
