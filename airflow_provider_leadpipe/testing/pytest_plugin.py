"""pytest plugin: the leadpipe_sandbox fixture (provided by the sandbox package)."""
