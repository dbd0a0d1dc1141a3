"""The ``mintaka`` command line (typer + rich)."""
