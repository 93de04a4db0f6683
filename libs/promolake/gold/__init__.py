"""Gold layer: feature and market tables built from silver, one module per table."""
