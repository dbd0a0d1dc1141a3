"""The local reference backend (the embedded default)."""
