"""Reusable helpers for tests and for users trying mistgrid out (no network needed here)."""
