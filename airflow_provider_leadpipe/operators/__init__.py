"""Leadpipe operators, one module per resource: ``account`` (the account status), ``credit_report``
(credit burn rate and runway), ``visitors`` (visitor pulls to object storage), ``pixels``
(create and update pixels), ``audiences`` (Orbit audiences: upsert and run) and
``audience_results`` (a run's people to storage); ``base`` holds the operators' base class (what
operators and sensors share is in ``utils.tasks``)."""
