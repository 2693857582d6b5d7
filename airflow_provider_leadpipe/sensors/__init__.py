"""Sensors of the Leadpipe provider."""
