"""Pure domain code of the forecasting service: algorithms and entities, no frameworks and no I/O."""
