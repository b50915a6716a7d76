"""`python -m mistgrid.cli`: the same as the `mistgrid` command."""

from .main import main

main()
