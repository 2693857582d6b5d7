"""Triggers of the Leadpipe provider: ``account`` (the sensors' account trigger, with ``poller``
and ``events``), ``audiences`` (Orbit audience runs), ``base`` (what every trigger shares),
``watchers`` (asset watchers: credits back, new completed audience runs; the account watchers'
shared loop) and ``credits`` (the credits-low watcher)."""
