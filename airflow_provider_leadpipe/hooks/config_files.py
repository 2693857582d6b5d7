"""Audience configs kept as files, checked without Airflow running (for a CI job).

Each ``*.yaml``, ``*.yml`` or ``*.json`` file in a folder holds one audience::

    name: CRM switchers            # required
    status: active                 # optional
    topic_names: [CRM Software]    # optional: resolved to ids and added to topicIds
    min_audience_size: 100         # optional: checked against the preview's totalCount
    max_audience_size: 50000       # optional
    config:                        # required: the Orbit config
      topicIds: [101]
      filters: {contact.hasBusinessEmail: true}

:func:`check_audience_files` asks Orbit (or the sandbox) what the upsert operator would ask: topic
names, ``validate``, and the preview when a size bound is set. Run it as
``python -m airflow_provider_leadpipe.hooks.config_files <folder> [--conn-id leadpipe_default]``:
one line per problem (``<file>: <problem>``), exit status 1 when there is any, 2 when the folder
cannot be read, 0 otherwise. The connection comes from ``AIRFLOW_CONN_<ID>`` as in Airflow.

A DAG reads the same file with :func:`read_audience_file` (checked locally, Orbit not asked) and
passes :meth:`AudienceFile.upsert_arguments` to ``LeadpipeUpsertAudienceOperator``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models.audiences import audience_config, audience_name, audience_status
from airflow_provider_leadpipe.utils import validation

SUFFIXES = (".yaml", ".yml", ".json")
KEYS = ("name", "status", "config", "topic_names", "min_audience_size", "max_audience_size")


def audience_files(folder: str | Path) -> list[Path]:
    """The audience files of ``folder`` (not its subfolders), sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise LeadpipeConfigError(f"{root} is not a folder")
    return sorted(path for path in root.iterdir() if path.suffix.lower() in SUFFIXES and path.is_file())


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


@dataclass(frozen=True)
class AudienceFile:
    """One audience file, read and checked locally: the upsert operator's arguments."""

    path: Path
    name: str
    config: dict[str, Any]
    status: str | None = None
    topic_names: list[str] | None = None
    min_audience_size: int | None = None
    max_audience_size: int | None = None

    def upsert_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``LeadpipeUpsertAudienceOperator`` (name, config, status, topic
        names and size bounds)."""
        return {
            "name": self.name,
            "config": self.config,
            "status": self.status,
            "topic_names": self.topic_names,
            "min_audience_size": self.min_audience_size,
            "max_audience_size": self.max_audience_size,
        }


def _read(path: Path) -> tuple[AudienceFile | None, list[str]]:
    """The file's audience (None when it has none) and its local problems (unknown keys, bad values)."""
    try:
        spec = _load(path)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, [f"not valid {path.suffix.lstrip('.').upper()}: {' '.join(str(exc).split())[:200]}"]
    if not isinstance(spec, dict):
        return None, ["must hold one audience: a mapping with name and config"]
    problems = [f"unknown key {key!r} (known: {', '.join(KEYS)})" for key in spec if key not in KEYS]
    try:
        name = audience_name(spec.get("name"))
        status = audience_status(spec.get("status"))
        config = audience_config(spec.get("config"))
        names = validation.string_list(spec.get("topic_names"), "topic_names")
        low, high = (
            None if spec.get(key) is None else validation.whole_number(spec[key], key, 0)
            for key in ("min_audience_size", "max_audience_size")
        )
        audience = AudienceFile(
            path=path,
            name=name,
            config=config,
            status=status,
            topic_names=list(names) if names else None,
            min_audience_size=low,
            max_audience_size=high,
        )
    except LeadpipeConfigError as exc:
        return None, [*problems, str(exc)]
    if low is not None and high is not None and low > high:
        problems.append(f"min_audience_size ({low}) is larger than max_audience_size ({high})")
    return audience, problems


def read_audience_file(path: str | Path) -> AudienceFile:
    """One audience file (YAML or JSON), checked locally as the CI command checks it; Orbit is not
    asked (the upsert operator does that when it runs).

    :raises LeadpipeConfigError: naming the file and what is wrong: not valid YAML/JSON, every
        unknown key, or the first bad value.
    """
    path = Path(path)
    try:
        audience, problems = _read(path)
    except OSError as exc:
        raise LeadpipeConfigError(f"audience file {path} cannot be read: {exc}") from None
    if problems or audience is None:
        raise LeadpipeConfigError(f"audience file {path}: " + "; ".join(problems))
    return audience


def check_file(hook: LeadpipeHook, path: Path) -> list[str]:
    """Every problem of one audience file (empty when Orbit accepts it)."""
    audience, problems = _read(path)
    if audience is None:
        return problems
    config, low, high = audience.config, audience.min_audience_size, audience.max_audience_size
    try:
        if audience.topic_names:
            ids = hook.resolve_topic_ids(audience.topic_names)
            known = config["topicIds"] if isinstance(config.get("topicIds"), list) else []
            config = {**config, "topicIds": list(dict.fromkeys([*known, *ids]))}
        check = hook.validate_audience_config(config)
        problems += [f"config: {problem}" for problem in check.problems()]
        if check.valid and (low is not None or high is not None):
            total = hook.preview_audience(config).total_count
            if (low is not None and total < low) or (high is not None and total > high):
                problems.append(
                    f"the preview counts {total} people, outside min_audience_size {low} / "
                    f"max_audience_size {high}"
                )
    except LeadpipeConfigError as exc:
        problems += str(exc).split("\n")
    return problems


def check_audience_files(folder: str | Path, hook: LeadpipeHook | None = None) -> list[str]:
    """One line per problem of every audience file in ``folder``: ``<file>: <problem>``.

    :raises LeadpipeConfigError: when ``folder`` is not a folder.
    :raises LeadpipeError: when Orbit cannot be asked (auth, network, server errors).
    """
    files = audience_files(folder)
    own = hook is None
    hook = hook or LeadpipeHook()
    try:
        return [f"{path}: {line}" for path in files for line in check_file(hook, path)]
    finally:
        if own:
            hook.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: print the problems, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_leadpipe.hooks.config_files",
        description="Check every audience file (*.yaml, *.yml, *.json) in a folder against Orbit.",
    )
    parser.add_argument("folder")
    parser.add_argument("--conn-id", default="leadpipe_default", help="the Leadpipe connection id")
    args = parser.parse_args(argv)
    answer = sys.stdout
    try:
        # Airflow 2 logs to stdout (connection look-ups, each HTTP request), which is this
        # command's answer: while it works, whatever else is printed goes to stderr.
        with contextlib.redirect_stdout(sys.stderr), LeadpipeHook(leadpipe_conn_id=args.conn_id) as hook:
            lines = check_audience_files(args.folder, hook)
    except (LeadpipeError, OSError, AirflowNotFoundException) as exc:  # the last: no such connection
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line, file=answer)
    files = len(audience_files(args.folder))
    print(f"{files} audience file(s) checked, {len(lines)} problem(s)", file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
