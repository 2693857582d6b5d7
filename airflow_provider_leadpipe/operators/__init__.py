"""Leadpipe operators, one module per resource: ``account`` (the account status), ``credit_report``
(credit burn rate and runway), ``visitors`` (visitor pulls to object storage), ``pixels``
(create and update pixels) and ``audiences`` (Orbit audiences: upsert, run, people to storage);
``base`` holds the base class and what operators and sensors share."""
