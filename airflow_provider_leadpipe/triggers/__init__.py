"""Triggers of the Leadpipe provider: ``leadpipe`` (the account, with ``poller`` and ``events``),
``audiences`` (Orbit audience runs), ``watchers`` (asset watchers: credits back, new completed
audience runs)."""
