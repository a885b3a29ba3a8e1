"""`python -m hub` is the `servicehub` command."""

from hub.cli import main

main()
