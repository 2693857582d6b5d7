"""Sensors of the Leadpipe provider: ``leadpipe`` (the account), ``audiences`` (Orbit audience runs);
``base`` holds the control flow both share."""
