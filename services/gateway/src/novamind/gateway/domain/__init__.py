"""Pure gateway domain code: no frameworks and no I/O."""
