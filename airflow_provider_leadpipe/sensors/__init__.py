"""Sensors of the Leadpipe provider: ``account`` (the account), ``audiences`` (Orbit audience runs);
``base`` holds the control flow both share."""
