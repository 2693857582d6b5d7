"""Conditions: when a resource is ready, decided without I/O; one module per resource."""
