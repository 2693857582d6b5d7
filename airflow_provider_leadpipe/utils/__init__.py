"""Helpers below every kind: argument validation, storage, CSV rows, lineage, version compat."""
