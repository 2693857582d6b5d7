"""Offline sandbox of Leadpipe's Data API, served over real HTTP on 127.0.0.1 (like moto for AWS).

    from leadpipe_sandbox import Fault, LeadpipeSandbox

    with LeadpipeSandbox(seed=42, visitors=1000) as sandbox:
        os.environ.update(sandbox.connection_env())
        sandbox.queue_faults(Fault.rate_limit(count=2))
        ...

Names are imported lazily: the pytest plugin imports this package in every pytest run of anyone
who has the sandbox installed, so importing it must cost nothing (no pydantic, httpx, uvicorn or
Airflow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadpipe_sandbox.faults import Fault
    from leadpipe_sandbox.sandbox import LeadpipeSandbox, SandboxError
    from leadpipe_sandbox.scenarios import DEFAULT_API_KEY

__version__ = "0.1.0"

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
