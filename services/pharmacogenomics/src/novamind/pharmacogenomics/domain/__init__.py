"""Pure domain code of the pharmacogenomics service: algorithms and entities, no frameworks and no I/O."""
