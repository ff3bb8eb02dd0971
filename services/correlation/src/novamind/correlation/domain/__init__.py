"""Pure domain code of the correlation service: algorithms and entities, no frameworks and no I/O."""
