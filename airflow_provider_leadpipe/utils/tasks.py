"""What every Leadpipe operator and sensor shares: :class:`LeadpipeTaskMixin` (connection id,
``hook_params``, errors named after the task, the arguments checked at DAG parse time, the
"Leadpipe connection" extra link) and the deferral timeout of a task that waits in the triggerer."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, conf

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.links import EXTRA_LINKS

T = TypeVar("T")

#: Extra time given to the framework's deferral timeout, so the trigger's own timeout event (which
#: reaches ``execute_complete``) always comes first; the framework timeout only backs it up.
DEFERRAL_GRACE = 60.0


def deferral_timeout(remaining: float, interval: float) -> timedelta:
    """The framework's deferral timeout: the trigger's ``remaining`` seconds plus a grace."""
    return timedelta(seconds=remaining + max(DEFERRAL_GRACE, 2 * float(interval)))


@dataclass(frozen=True)
class Literal:
    """Arguments checked when the task is built (a bad literal fails the DAG at parse time), unless
    one of them is templated: then the task checks it once rendered, in ``execute``.

    :param names: the task's attributes, handed to ``parse`` in this order.
    :param parse: the check (its result is dropped), or the name of a method of the task.
    :param args: handed to ``parse`` after the values (e.g. the argument's name).
    :param named: a :class:`LeadpipeConfigError` names the task (:meth:`LeadpipeTaskMixin.checked`).
    """

    names: tuple[str, ...]
    parse: Callable[..., Any] | str
    args: tuple[Any, ...] = ()
    named: bool = True


class LeadpipeTaskMixin:
    """The connection id, ``hook_params``, literal checks and extra link of a Leadpipe operator or
    sensor.

    Call :meth:`init_leadpipe` from ``__init__`` (after ``super().__init__``) and
    :meth:`check_literals` once the arguments are set; list the checks in :attr:`literals`.
    """

    task_id: str
    leadpipe_conn_id: str
    hook_params: dict[str, Any]

    #: "Leadpipe connection": the credits page of ``leadpipe_conn_id`` (Airflow 3.1+; none before).
    operator_extra_links: Collection[BaseOperatorLink] = EXTRA_LINKS

    #: The arguments checked by :meth:`check_literals` (besides ``leadpipe_conn_id``).
    literals: ClassVar[Sequence[Literal]] = ()

    def init_leadpipe(self, leadpipe_conn_id: Any, hook_params: Mapping[str, Any] | None) -> None:
        # A string (maybe a template), or an XComArg that Airflow resolves before execute().
        self.leadpipe_conn_id = leadpipe_conn_id
        self._check_literal(Literal(("leadpipe_conn_id",), validation.conn_id))
        self.hook_params = self.checked(validation.hook_params, hook_params)

    def init_deferrable(self, deferrable: bool | None) -> None:
        """``deferrable``; None means ``[operators] default_deferrable``, as in Airflow's own operators."""
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)

    def check_literals(self) -> None:
        """Apply :attr:`literals`, in order, skipping those with a templated value."""
        for literal in self.literals:
            self._check_literal(literal)

    def _check_literal(self, literal: Literal) -> None:
        values = [getattr(self, name) for name in literal.names]
        if validation.has_template(*values):
            return
        parse = getattr(self, literal.parse) if isinstance(literal.parse, str) else literal.parse
        if literal.named:
            self.checked(parse, *values, *literal.args)
        else:
            parse(*values, *literal.args)

    def checked(self, parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``parse(*args, **kwargs)``, with this task named in a :class:`LeadpipeConfigError`."""
        try:
            return parse(*args, **kwargs)
        except LeadpipeConfigError as exc:
            raise LeadpipeConfigError(f"{type(self).__name__} '{self.task_id}': {exc}") from None
