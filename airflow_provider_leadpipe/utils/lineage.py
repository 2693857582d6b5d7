"""OpenLineage: Leadpipe resources as datasets, and the ``leadpipe`` asset URI scheme.

Naming follows the OpenLineage spec (namespace = ``scheme://authority``, name = the path):

- namespace ``leadpipe://<API host[:port]>``, from the connection's base URL
  (``https://api.aws53.cloud`` -> ``leadpipe://api.aws53.cloud``);
- name the resource: ``visitors``, ``audiences/<audience id>``,
  ``audiences/<audience id>/runs/<run id>``.

So ``Asset("leadpipe://api.aws53.cloud/audiences/<id>/runs/<run id>")`` converts (through the
provider info's ``asset-uris``) to the very dataset the results pull reports as its input.

Without the OpenLineage provider (the ``openlineage`` extra) nothing calls
:meth:`LeadpipeLineageMixin.get_openlineage_facets_on_complete` and nothing here imports it:
every OpenLineage import is inside a function.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

SCHEME = "leadpipe"
_UUID = re.compile(r"\A[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\Z")


def _authority(host: str | None, port: int | None) -> str:
    if not host:
        raise ValueError("a leadpipe:// URI must name the API host, e.g. leadpipe://api.aws53.cloud/visitors")
    host = host.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return host if port in (None, 443) else f"{host}:{port}"


def namespace(base_url: str) -> str:
    """The OpenLineage namespace of a Leadpipe API base URL: ``leadpipe://<host[:port]>``."""
    parts = urllib.parse.urlsplit(base_url)
    return f"{SCHEME}://{_authority(parts.hostname, parts.port)}"


def _canonical_path(path: str) -> str:
    """Path segments that are UUIDs in their canonical (lower-case) form; no empty segments."""
    segments = [_UUID.sub(lambda match: match.group(0).lower(), part) for part in path.split("/") if part]
    if not segments:
        raise ValueError(
            "a leadpipe:// URI must name a resource, e.g. leadpipe://api.aws53.cloud/audiences/<id>"
        )
    return "/".join(segments)


def resource_uri(base_url: str, resource: str) -> str:
    """The ``leadpipe://`` asset URI of ``resource`` on the API at ``base_url``."""
    return f"{namespace(base_url)}/{_canonical_path(resource)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """The ``asset-uris`` handler: a lower-case host without the default port, canonical ids.

    :raises ValueError: no host, no resource path, or a query (a resource is named by its path).
    """
    if uri.query:
        raise ValueError(
            f"a leadpipe:// URI names a resource by its path only, without a query: {uri.query!r}"
        )
    return uri._replace(
        netloc=_authority(uri.hostname, uri.port), path="/" + _canonical_path(uri.path), fragment=""
    )


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Dataset:
    """The ``asset-uris`` converter: a ``leadpipe://`` asset as the operators' input dataset."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = sanitize_uri(urllib.parse.urlsplit(asset.uri))
    return Dataset(namespace=f"{SCHEME}://{parts.netloc}", name=parts.path.lstrip("/"))


def storage_dataset(target: Any) -> tuple[str, str]:
    """``(namespace, name)`` of a written ``ObjectStoragePath``: the store's ``scheme://bucket`` and
    the key; a local file is namespace ``file`` and its absolute path, as common-io names it."""
    if target.protocol in ("", "file", "local"):
        return "file", "/" + target.key.lstrip("/")
    return target.namespace, target.key


class LeadpipeLineageMixin:
    """``get_openlineage_facets_on_complete`` for an operator that pulled one Leadpipe resource
    into one file: it calls :meth:`record_lineage` at the end of ``execute``."""

    _lineage: tuple[str, str, Any, int] | None = None

    def record_lineage(self, base_url: str, resource: str, target: Any, records: int) -> None:
        """Remember what was read and written (nothing is imported or sent here)."""
        self._lineage = (base_url, resource, target, records)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """Input: the Leadpipe resource; output: the written file, with its row count and size."""
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._lineage is None:
            return None
        base_url, resource, target, records = self._lineage
        try:
            size: int | None = int(target.stat().st_size)
        except Exception:  # a store that cannot tell: the row count alone
            size = None
        output_namespace, output_name = storage_dataset(target)
        return OperatorLineage(
            inputs=[Dataset(namespace=namespace(base_url), name=_canonical_path(resource))],
            outputs=[
                OutputDataset(
                    namespace=output_namespace,
                    name=output_name,
                    outputFacets={
                        "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=records, size=size)
                    },
                )
            ],
        )
