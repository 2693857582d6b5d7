"""README.md and docs/*.md, executed: every Python and shell block runs as shown, and every output
a document claims is compared with what the block before it really printed.

Library: Sybil (https://sybil.readthedocs.io). It finds fenced blocks and HTML-comment directives in
Markdown (``<!-- skip: next "reason" -->``, ``<!-- invisible-code-block: python ... -->``), runs the
Python blocks of one document in one namespace, in order, with tracebacks pointing at the
document's own lines, and takes an evaluator of ours for any other kind of block. pytest-examples
runs Python blocks only and wants printed output as ``#>`` comments inside the code, which is not
how these documents show it. What is ours is only what Sybil leaves to its users: the evaluators
for ``bash`` blocks, for ``text`` / ``log`` blocks (claimed output, matched with doctest's own
matcher and its ``...`` wildcard), for ``json`` blocks, for blocks with a ``title="<file>"`` and
for the two ``docs:`` directives below.

A block gets nothing the page does not show: no hidden DAG around Python blocks, no hidden
``AIRFLOW_CONN_LEADPIPE_DEFAULT``, no ``sandbox`` in the namespace. The conventions a document follows:

- ```` ```python ```` and ```` ```bash ```` blocks run, in document order. Python shares the
  document's namespace. Shell blocks run with ``bash -euo pipefail`` in a fresh folder per document
  (``project``), with this venv's ``bin`` first on ``PATH`` and a throw-away ``AIRFLOW_HOME`` per
  document (a copy of the session's migrated SQLite DB), never the user's; a non-zero exit status
  fails the block.
- ``<!-- docs: sandbox -->``: from here to the end of the document, a sandbox is running (the
  pytest fixture's, reset for each document), ``sandbox`` in the namespace is it, and
  ``AIRFLOW_CONN_LEADPIPE_DEFAULT`` points at it for Python and shell blocks. The paragraph right
  after the directive must say so in visible text (it names the sandbox and the connection).
- ``<!-- docs: in-dag -->``: from here to the end of the document, Python blocks run inside one
  ``with DAG(...)``, as the body of one DAG file. The paragraph right after the directive must say
  so (it names the DAG).
- ``<!-- docs: airflow-3 -->`` (or ``airflow-3.3``...): from here to the end of the document, blocks
  are for that Airflow version and newer (``airflow.sdk``, the standard provider...);
  ``<!-- docs: airflow-3-next -->``: only the next block that runs (with its output blocks). On an
  older Airflow (the version matrix) they are listed as not run instead. The paragraph right after
  the directive must say so (it names "Airflow 3", "Airflow 3.3"...). Everything else also runs
  on Airflow 2.11.
- A hidden block (``invisible-code-block``) may check what a shown block did or set up sandbox
  state a sentence describes; it may not define a connection or touch ``os.environ``.
- A ```` ```text ```` block right after a block that ran is what that block printed (stdout); a
  ```` ```text title="stderr" ```` block is what a shell block wrote to stderr (shown where a page
  quotes an error or a warning; otherwise stderr is not compared); a ```` ```log ```` block is
  what a Python block logged at INFO and above (messages only); ``...`` matches anything,
  whitespace differences are ignored.
- ```` ```python title="conftest.py" ```` writes the file into ``project`` (any language).
- A ```` ```json ```` block is data for the blocks after it (``json_block``), so a hidden block
  can check a documented shape against the code.
- A block that cannot run on its own is preceded by ``<!-- skip: next "why" -->`` (or enclosed in
  ``skip: start "why"`` / ``skip: end``); the reason is required and the list is printed at the
  end of the run.
"""

from __future__ import annotations

import contextlib
import doctest
import functools
import io
import json
import logging
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from unittest import SkipTest, mock

import pytest
from airflow import __version__ as airflow_version
from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.evaluators.skip import Skipper
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

try:  # Airflow 3's task SDK logs through structlog; Airflow 2 does not install it
    from structlog.testing import capture_logs
except ImportError:

    @contextlib.contextmanager
    def capture_logs() -> Iterator[list[dict[str, Any]]]:
        yield []


pytestmark = pytest.mark.docs

REPO = Path(__file__).resolve().parents[2]
CONN_ENV = "AIRFLOW_CONN_LEADPIPE_DEFAULT"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_TIMEOUT = 180
#: Namespace key of the last block that ran: where it ended and what it printed.
LAST_OUTPUT = "_docs_last_output"
#: doctest's matcher: ``...`` matches any text, runs of whitespace compare equal.
MATCH_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: Namespace key: (version, "page" or "next") while blocks need a newer Airflow (``docs: airflow-3``).
NEWER_AIRFLOW = "_docs_newer_airflow"
AIRFLOW = tuple(int(part) for part in airflow_version.split(".")[:2])
#: Namespace key: the DAG Python blocks run in from ``<!-- docs: in-dag -->`` on.
IN_DAG = "_docs_in_dag"
#: The fence of a block that shows a shell block's stderr.
STDERR_INFO = 'text title="stderr"'
_OUTPUT_BLOCK = re.compile(r'```text(?: title="stderr")?\n.*?\n```', re.DOTALL)


@dataclass
class Printed:
    end: int  # offset in the document where the block that printed it ends
    text: str  # its standard output
    log: str = ""  # the messages it logged (Python blocks), one per line
    stderr: str | None = None  # its standard error (shell blocks)


def _record(example: Example, text: str, log: str = "", stderr: str | None = None) -> None:
    example.namespace[LAST_OUTPUT] = Printed(example.end, text, log, stderr)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


_python = PythonEvaluator()


def _hidden(example: Example) -> bool:
    return example.document.text.startswith("<!--", example.start)


#: What a hidden block may not do: define a connection behind the shown blocks' back.
_HIDDEN_CONNECTION = re.compile(r"os\.environ|AIRFLOW_CONN_|connection_env\(|monkeypatch")


def run_python(example: Example) -> None:
    __tracebackhide__ = True
    if _hidden(example) and (found := _HIDDEN_CONNECTION.search(str(example.parsed))):
        raise AssertionError(
            f"a hidden block may not define a connection ({found[0]!r}): show it, or use "
            "<!-- docs: sandbox --> with a visible sentence"
        )
    dag = example.namespace.get(IN_DAG)
    printed, messages, root = io.StringIO(), _Messages(), logging.getLogger()
    level = root.level
    root.addHandler(messages)
    root.setLevel(min(level, logging.INFO) or logging.INFO)
    try:
        # Airflow 3's task SDK logs through structlog (operators' self.log), the rest through logging.
        with (
            contextlib.redirect_stdout(printed),
            capture_logs() as events,
            dag if dag is not None else contextlib.nullcontext(),
        ):
            _python(example)
    finally:
        root.removeHandler(messages)
        root.setLevel(level)
    for event in events:
        if logging.getLevelName(event.get("log_level", "info").upper()) >= logging.INFO:
            args = event.get("positional_args")
            messages.lines.append(event["event"] % args if args else str(event["event"]))
    _record(example, printed.getvalue(), "\n".join(messages.lines) + "\n")


def run_shell(example: Example) -> str | None:
    namespace = example.namespace
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", str(example.parsed)],
            cwd=namespace["project"],
            env=namespace["shell_env"],
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        return f"still running after {SHELL_TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}"
    if done.returncode:
        return f"exit status {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-4000:]}"
    _record(example, done.stdout, stderr=done.stderr)
    return None


def _check(example: Example, what: str) -> str | None:
    """The claimed output (``text``), stderr (``stderr``) or log (``log``) matches what the block
    right before it produced."""
    printed: Printed | None = example.namespace.get(LAST_OUTPUT)
    between = example.document.text[printed.end : example.start] if printed else ""
    # Output blocks of the same block (stdout, then stderr) may stand in between.
    if printed is None or "```" in _OUTPUT_BLOCK.sub("", between):
        return f"a {what} block must follow a block that ran"
    actual = {"text": printed.text, "log": printed.log, "stderr": printed.stderr}[what]
    if actual is None:
        return f"a {what} block must follow a shell block"
    claimed = str(example.parsed)
    checker = doctest.OutputChecker()
    if checker.check_output(claimed, actual, MATCH_FLAGS):
        return None
    return checker.output_difference(doctest.Example("", claimed), actual, MATCH_FLAGS)


def check_output(example: Example) -> str | None:
    return _check(example, "text")


def check_log(example: Example) -> str | None:
    return _check(example, "log")


def check_stderr(example: Example) -> str | None:
    return _check(example, "stderr")


def keep_json(example: Example) -> None:
    """A ``json`` block is data: the blocks after it find it parsed as ``json_block`` (None when it
    is a sketch with ``…`` placeholders rather than JSON)."""
    try:
        example.namespace["json_block"] = json.loads(str(example.parsed))
    except ValueError:
        example.namespace["json_block"] = None


def write_file(example: Example) -> None:
    name, source = example.parsed
    target = Path(example.namespace["project"]) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(str(source))


class FileBlockParser:
    """```` ```<language> title="<path>" ````: the block is that file of the document's project;
    ```` ```text title="stderr" ```` is what the shell block before it wrote to stderr."""

    lexer = FencedCodeBlockLexer(
        language=r'[\w+-]+ title="[^"]+"', mapping={"language": "info", "source": "source"}
    )

    def __call__(self, document: Document):
        for region in self.lexer(document):
            if region.lexemes["info"] == STDERR_INFO:
                yield Region(region.start, region.end, region.lexemes["source"], check_stderr)
                continue
            name = re.search(r'title="([^"]+)"', region.lexemes["info"]).group(1)
            yield Region(region.start, region.end, (name, region.lexemes["source"]), write_file)


_DIRECTIVE = re.compile(r"<!--\s*docs:\s*(?P<name>[\w.-]+)\s*-->")
_AIRFLOW_DIRECTIVE = re.compile(r"airflow-(?P<version>\d+(?:\.\d+)?)(?P<next>-next)?")
#: What the visible paragraph after each directive must name (case-insensitive), so that a reader
#: sees what the test provides.
DIRECTIVE_WORDS = {
    "sandbox": ("sandbox", "connection"),
    "in-dag": ("dag",),
}


def _paragraph_after(document: Document, end: int) -> str:
    """The visible text after ``end`` up to the next blank line, code fence or comment."""
    # Directives written one after the other share the paragraph after the last of them.
    rest = re.sub(r"^(?:\s*<!--\s*docs:[^>]*-->)*", "", document.text[end:]).lstrip("\n")
    return re.split(r"\n\s*\n|```|<!--", rest, maxsplit=1)[0]


def use_sandbox(example: Example) -> None:
    namespace = example.namespace
    server = namespace["sandbox_server"]
    namespace["sandbox"] = server
    connection = server.connection_env()
    os.environ.update(connection)
    namespace["shell_env"].update(connection)


def needs_airflow(version: tuple[int, ...], scope: str, example: Example) -> None:
    example.namespace[NEWER_AIRFLOW] = (version, scope)


def use_dag(example: Example) -> None:
    example.namespace[IN_DAG] = DAG(dag_id=f"docs_{Path(example.path).stem}", schedule=None)


class DirectiveParser:
    """``<!-- docs: sandbox -->`` and ``<!-- docs: in-dag -->`` (see the module docstring)."""

    evaluators: ClassVar[dict[str, Callable[[Example], None]]] = {
        "sandbox": use_sandbox,
        "in-dag": use_dag,
    }

    def __call__(self, document: Document):
        for match in _DIRECTIVE.finditer(document.text):
            name = match["name"]
            evaluator = self.evaluators.get(name)
            words = DIRECTIVE_WORDS.get(name, ())
            if found := _AIRFLOW_DIRECTIVE.fullmatch(name):
                version = tuple(int(part) for part in found["version"].split("."))
                scope = "next" if found["next"] else "page"
                evaluator = functools.partial(needs_airflow, version, scope)
                words = (f"airflow {found['version']}",)
            if evaluator is None:
                raise ValueError(f"{document.path}: unknown directive 'docs: {name}'")
            said = _paragraph_after(document, match.end()).lower()
            missing = [word for word in words if word not in said]
            if missing:
                evaluator = functools.partial(_unexplained, name, missing)
            yield Region(match.start(), match.end(), name, evaluator)


def _unexplained(name: str, missing: list[str], example: Example) -> str:
    return (
        f"'docs: {name}' must be explained by the visible paragraph right after it, "
        f"which does not mention {' or '.join(missing)}"
    )


SYBIL = Sybil(
    parsers=[
        CodeBlockParser("python", run_python),
        CodeBlockParser("bash", run_shell),
        CodeBlockParser("text", check_output),
        CodeBlockParser("log", check_log),
        CodeBlockParser("json", keep_json),
        FileBlockParser(),
        DirectiveParser(),
        SkipParser(),
    ],
)


def serve_briefly(command: str, env: dict[str, str], lines: int = 4) -> None:
    """Print the first ``lines`` lines a server command prints, then stop it (SIGTERM).

    For documented commands that serve until stopped: the ``--port`` they name is swapped for
    ``0`` (the server binds a free port itself, no other process can take it first), and the port
    its first line reports is swapped back for the documented one in what they printed.
    """
    args = shlex.split(command)
    asked = args[args.index("--port") + 1]
    args[args.index("--port") + 1] = "0"
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        banner = "".join(server.stdout.readline() for _ in range(lines))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    bound = re.search(r"http://[^\s:/]+:(\d+)", banner)
    assert bound, f"{command!r} printed no URL with the port it listens on:\n{banner}"
    print(re.sub(rf":{bound[1]}\b", f":{asked}", banner), end="")


def _shell_env(project: Path, migrated_db: Path) -> dict[str, str]:
    """The environment of a document's shell blocks: this venv first on PATH, and an Airflow home of
    the document's own, whose SQLite DB is a copy of the session's migrated one (what a block
    stores, e.g. `airflow connections add`, stays there: never in the suite's DB or the user's)."""
    home = project / ".airflow-home"
    home.mkdir()
    # SQLite's own backup: a consistent copy, also of what is still in the source's journal.
    with (
        contextlib.closing(sqlite3.connect(migrated_db)) as source,
        contextlib.closing(sqlite3.connect(home / "airflow.db")) as copy,
    ):
        source.backup(copy)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "HOME": str(project),  # nothing a command writes "for the user" lands in the real home
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        }
    )
    return env


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(REPO)) for p in DOCUMENTS])
def test_document_runs_as_written(path, leadpipe_sandbox_server, airflow_db, tmp_path, marked_blocks):
    document = SYBIL.parse(path)
    project = tmp_path / "project"
    project.mkdir()
    # Nothing the page does not show: no connection from the environment the suite runs in.
    with mock.patch.dict(os.environ):
        os.environ.pop(CONN_ENV, None)
        shell_env = _shell_env(project, airflow_db)
        default_key = leadpipe_sandbox_server.api_key
        leadpipe_sandbox_server.reset()
        document.namespace.update(
            sandbox_server=leadpipe_sandbox_server,
            project=project,
            shell_env=shell_env,
            serve_briefly=lambda command: serve_briefly(command, shell_env),
        )
        try:
            failures = _run(document, str(path.relative_to(REPO)), marked_blocks)
        finally:
            leadpipe_sandbox_server.api_key = default_key
    assert not failures, "\n\n".join(failures)


def _run(document: Document, name: str, marked_blocks: list[tuple[str, int, str]]) -> list[str]:
    failures = []
    outputs = (check_output, check_log, check_stderr)
    skipping_outputs = False  # the block these output blocks belong to was not run
    for example in document.examples():
        runs = example.region.evaluator in (run_python, run_shell)
        if runs or example.region.evaluator not in outputs:
            skipping_outputs = False
        needs = example.namespace.get(NEWER_AIRFLOW) if runs else None
        if needs and needs[1] == "next":
            del example.namespace[NEWER_AIRFLOW]
        if needs and needs[0] > AIRFLOW:
            wanted = ".".join(map(str, needs[0]))
            marked_blocks.append((name, example.line, f"for Airflow {wanted} and newer, as the page says"))
            skipping_outputs = True
            continue
        if skipping_outputs and example.region.evaluator in outputs:
            continue
        if isinstance(example.region.evaluator, Skipper):
            action, reason = example.parsed
            if action in ("start", "next") and not (reason and reason.strip().strip("\"'")):
                failures.append(f"{name}:{example.line}: 'skip: {action}' needs a reason")
        try:
            example.evaluate()
        except SkipTest as skipped:
            marked_blocks.append((name, example.line, str(skipped)))
        except Exception as exc:  # every failure of the document, not only the first
            failures.append(f"{name}:{example.line}: {type(exc).__name__}: {exc}")
    return failures
