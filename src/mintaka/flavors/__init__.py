"""Model flavors: how a model's bytes are written and read back safely."""
