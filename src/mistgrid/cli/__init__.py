"""The `mistgrid` command line: click commands, one module each."""
