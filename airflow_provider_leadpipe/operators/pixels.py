"""Create and update Leadpipe tracking pixels; each operator returns the pixel to XCom."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_leadpipe.models import Pixel
from airflow_provider_leadpipe.models.pixels import create_pixel_body, if_exists_policy, update_pixel_body
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class _PixelOperator(LeadpipeBaseOperator):
    """What both pixel operators share: the connection, the hook, and the XCom value."""

    ui_color = "#e8f1fd"

    def _returned(self, pixel: Pixel) -> dict[str, Any]:
        self.log.info("Pixel %s for %s: status %s", pixel.id, pixel.domain, pixel.status)
        return pixel.to_dict()


class LeadpipeCreatePixelOperator(_PixelOperator):
    """Create the tracking pixel for a domain; by default, return the existing one if there is one.

    Leadpipe allows one pixel per domain. With ``if_exists="return"`` (the default) a re-run finds
    the existing pixel and returns it unchanged (its name and path filters are left as they are),
    so the task is safe to retry. With ``if_exists="error"`` an existing pixel fails the task with
    :class:`~airflow_provider_leadpipe.exceptions.LeadpipeConflictError`.

    Returns the pixel with the API's key names (``id``, ``domain``, ``name``, ``status``, ``code``
    (the HTML snippet, on creation), ...) to XCom; a later task can use
    ``"{{ ti.xcom_pull(task_ids='create_pixel')['id'] }}"``.

    :param domain: the site's domain, 1-255 characters (templated).
    :param name: display name, 1-255 characters (templated).
    :param included_paths: track only these path prefixes (templated); each starts with ``/``,
        2-500 characters, at most 50.
    :param excluded_paths: track everything except these prefixes (templated); exclusive with
        ``included_paths``.
    :param if_exists: ``"return"`` (default) or ``"error"``.
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = (
        "domain",
        "name",
        "included_paths",
        "excluded_paths",
        "leadpipe_conn_id",
    )
    literals = (
        Literal(
            ("domain", "name", "included_paths", "excluded_paths"),
            create_pixel_body,
            named=False,
        ),
    )

    def __init__(
        self,
        *,
        domain: str,
        name: str | None = None,
        included_paths: list[str] | None = None,
        excluded_paths: list[str] | None = None,
        if_exists: str = "return",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.domain = domain
        self.name = name
        self.included_paths = included_paths
        self.excluded_paths = excluded_paths
        self.if_exists = if_exists_policy(if_exists)
        self.check_literals()

    def execute(self, context: Context) -> dict[str, Any]:
        with self.hook as hook:
            pixel = hook.create_pixel(
                self.domain, self.name, self.included_paths, self.excluded_paths, if_exists=self.if_exists
            )
        return self._returned(pixel)


class LeadpipeUpdatePixelOperator(_PixelOperator):
    """Pause or activate a pixel, or set its path filters; only what is given changes.

    For each path list: None (default) leaves it as it is, ``[]`` clears it, a non-empty list
    replaces it. The lists are exclusive, but one may be set while the other is cleared
    (``included_paths=["/shop"], excluded_paths=[]`` switches a denylist to an allowlist).

    Returns the updated pixel with the API's key names to XCom.

    :param pixel_id: the pixel's id (templated), e.g. ``"{{ ti.xcom_pull(task_ids='create_pixel')['id'] }}"``.
    :param status: ``"active"`` or ``"paused"`` (templated).
    :param included_paths: allowlist of path prefixes (templated).
    :param excluded_paths: denylist of path prefixes (templated).
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = (
        "pixel_id",
        "status",
        "included_paths",
        "excluded_paths",
        "leadpipe_conn_id",
    )
    literals = (
        Literal(("pixel_id",), "_pixel_id", named=False),
        Literal(("status", "included_paths", "excluded_paths"), update_pixel_body, named=False),
    )

    def __init__(
        self,
        *,
        pixel_id: str,
        status: str | None = None,
        included_paths: list[str] | None = None,
        excluded_paths: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pixel_id = pixel_id
        self.status = status
        self.included_paths = included_paths
        self.excluded_paths = excluded_paths
        self.check_literals()

    @staticmethod
    def _pixel_id(value: Any) -> str:
        return validation.path_id("pixel_id", value)

    def execute(self, context: Context) -> dict[str, Any]:
        with self.hook as hook:
            pixel = hook.update_pixel(self.pixel_id, self.status, self.included_paths, self.excluded_paths)
        return self._returned(pixel)
