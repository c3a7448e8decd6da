"""``python -m tuneloop ...`` runs the command line, as the ``tuneloop`` script does."""

from tuneloop.cli import main

main()
