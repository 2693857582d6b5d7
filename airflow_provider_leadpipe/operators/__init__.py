"""Leadpipe operators: account status (``leadpipe``) and the credit report (``credit_report``)."""
