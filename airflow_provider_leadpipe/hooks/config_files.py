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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
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


def check_file(hook: LeadpipeHook, path: Path) -> list[str]:
    """Every problem of one audience file (empty when Orbit accepts it)."""
    try:
        spec = _load(path)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return [f"not valid {path.suffix.lstrip('.').upper()}: {' '.join(str(exc).split())[:200]}"]
    if not isinstance(spec, dict):
        return ["must hold one audience: a mapping with name and config"]
    problems = [f"unknown key {key!r} (known: {', '.join(KEYS)})" for key in spec if key not in KEYS]
    try:
        audience_name(spec.get("name"))
        audience_status(spec.get("status"))
        config = audience_config(spec.get("config"))
        names = validation.string_list(spec.get("topic_names"), "topic_names")
        low, high = (
            None if spec.get(key) is None else validation.whole_number(spec[key], key, 0)
            for key in ("min_audience_size", "max_audience_size")
        )
    except LeadpipeConfigError as exc:
        return [*problems, str(exc)]
    try:
        if names:
            ids = hook.resolve_topic_ids(names)
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
