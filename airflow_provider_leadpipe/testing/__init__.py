"""Offline Leadpipe API sandbox (see docs/sandbox.md)."""
