"""Triggers of the Leadpipe provider."""
