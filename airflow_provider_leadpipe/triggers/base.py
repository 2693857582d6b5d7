"""What the Leadpipe triggers and the tasks that wait share: driving a condition's reads
(:meth:`~airflow_provider_leadpipe.conditions.audiences.AudienceRunCondition.reads`) with a hook,
in a worker (:func:`check`) or in the triggerer (:func:`acheck`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_leadpipe.conditions.audiences import Read
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

T = TypeVar("T")


def check(hook: LeadpipeHook, plan: Generator[Read, Any, T]) -> T:
    """Run ``plan``'s reads with the hook's blocking methods; its verdict."""
    answer: Any = None
    try:
        while True:
            name, args, kwargs = plan.send(answer)
            answer = getattr(hook, name)(*args, **kwargs)
    except StopIteration as done:
        return done.value


async def acheck(hook: LeadpipeHook, plan: Generator[Read, Any, T]) -> T:
    """:func:`check` in the triggerer: the same plan, awaited reads (the hook's ``a`` twins)."""
    answer: Any = None
    try:
        while True:
            name, args, kwargs = plan.send(answer)
            answer = await getattr(hook, f"a{name}")(*args, **kwargs)
    except StopIteration as done:
        return done.value
