"""Helpers that make test fixtures (run by hand, not by pytest)."""
