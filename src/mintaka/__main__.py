"""``python -m mintaka`` runs the command line."""

from mintaka.cli.app import main

main()
