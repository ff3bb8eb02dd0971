"""Pure domain code of the pat service: algorithms and entities, no frameworks and no I/O."""
