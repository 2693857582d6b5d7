"""Hooks of the Leadpipe provider."""
