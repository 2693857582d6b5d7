"""Offline sandbox of Leadpipe's Data API, served over real HTTP on 127.0.0.1 (like moto for AWS).

    from airflow_provider_leadpipe.testing import Fault, LeadpipeSandbox

    with LeadpipeSandbox(seed=42, visitors=1000) as sandbox:
        os.environ.update(sandbox.connection_env())
        sandbox.queue_faults(Fault.rate_limit(count=2))
        ...

Names are imported lazily: the pytest plugin imports this package in every pytest run of anyone
who has the provider installed, so importing it must cost nothing (no pydantic, httpx, uvicorn or
Airflow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_leadpipe.testing.faults import Fault
    from airflow_provider_leadpipe.testing.sandbox import LeadpipeSandbox, SandboxError
    from airflow_provider_leadpipe.testing.scenarios import DEFAULT_API_KEY

__all__ = ["DEFAULT_API_KEY", "Fault", "LeadpipeSandbox", "SandboxError"]

_HOMES = {
    "DEFAULT_API_KEY": "scenarios",
    "Fault": "faults",
    "LeadpipeSandbox": "sandbox",
    "SandboxError": "sandbox",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
