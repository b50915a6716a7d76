"""Directories: the children table a directory's file holds (pure)."""
