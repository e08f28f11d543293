"""`python -m headroom.cli` runs the command line."""

from headroom.cli.main import main

main()
