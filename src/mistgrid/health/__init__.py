"""Checking, verifying and repairing files: results and their rules (pure)."""
