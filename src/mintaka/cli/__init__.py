"""The ``mintaka`` command line (typer + rich).

Its modules import the platform, the domain records and the store inside the commands that use
them, not at the top, so that the help and the command tree load without SQLAlchemy or pydantic.
"""
