"""Functional model builders, one family per file."""
