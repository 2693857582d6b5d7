"""``python -m leadpipe_sandbox``: same as the ``leadpipe-sandbox`` command."""

from leadpipe_sandbox.cli import main

main()
