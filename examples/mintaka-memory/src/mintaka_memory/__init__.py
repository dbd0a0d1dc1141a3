"""An example Mintaka backend: everything in memory, for documentation and tests."""
