"""Pure twin domain code: entities and rules, no frameworks and no I/O."""
