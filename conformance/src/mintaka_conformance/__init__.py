"""The Mintaka conformance suite: abstract tests every backend runs against itself."""
