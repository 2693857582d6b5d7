"""The argument tables and signatures stated in README.md and docs/ match the code.

What the test reads (the convention the pages follow):

- **An argument table** is a Markdown table whose first header cell is `Argument` and that has a
  `Default` column. It documents the provider class named (as a code span or a bare word) by the
  closest heading above it; when that heading names none, the headings enclosing it are tried.
  Each row's first cell is one argument in backticks. `Default` is a Python literal (`None`, `4`,
  `"infer"`, `("expired",)`), `required` (no default), or `[operators] default_deferrable` (the
  code's default is `None`, resolved from that setting). An optional `Templated` column (`yes` /
  `no`) must agree with the class's `template_fields`.
  Checked: every row names an argument the class takes, every argument of the class's own is a
  row, and every stated default is the real one. A class's "own" arguments are those its provider
  classes declare, minus what Airflow's base classes (BaseOperator, BaseSensorOperator) declare.
- A table whose first header cell is `Argument` without a `Default` column is a partial one (e.g.
  what `[]` means per argument): its rows must name arguments of its class.
- **An inline signature** is a code span `name(params)` that parses as a Python parameter list:
  in a table's first column, or in prose when it has a bare name, `*` or `...` (`f(x=1)` alone in
  prose is a call example, unless it names every parameter). `name` is a provider class, a
  dotted path into the package, `hook.`/`sandbox.`/`Fault.` + a method, or a bare method of the
  page's classes (the sandbox's and `Fault`'s on docs/sandbox.md, `LeadpipeHook`'s elsewhere).
  Checked: every name exists, stated defaults are the real ones (`...` / `…` as a default: not
  stated), names shown before `*` can really be passed by position, in that order, and a name
  shown without a default has none. A class signature without `...` must list every argument.
- **Connection extras**: a table row whose first cell is `Extra `name`` names a field of the
  Connections form (`CONN_FIELDS`); a stated "default N" is the hook's default for it
  (`hooks.settings.ApiSettings`), "at most N" and "A-B" are the form's bounds.
- **The sandbox CLI**: every `--option` in a code span of docs/sandbox.md (or after
  `leadpipe-sandbox` anywhere) is one of its options; "`--option` (default `X`)" states its default.
- **Every user-facing class has one**: each public operator and sensor, the asset-watcher
  triggers and `LeadpipeSandbox` have an argument table or a complete inline signature. The
  triggers the sensors and operators defer to are built by them, never by users, and are left out.

Pure file reads plus `inspect.signature`: the module runs in about a second. It runs in the version
matrix too (`scripts/matrix.sh` collects tests/docs): which arguments count as Airflow's own comes
from the installed Airflow's base classes, so each version checks the docs against itself.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typing_extensions
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS
from markdown_it.token import Token

import airflow_provider_leadpipe
import leadpipe_sandbox
from tests.docs.markdown_pages import PAGES, REPO, Page, inline_tokens, load, page_id, plain_text

pytestmark = pytest.mark.docs

PACKAGE = airflow_provider_leadpipe.__name__
OWN_PACKAGES = (PACKAGE, leadpipe_sandbox.__name__)  # the provider's and the sandbox's classes
REQUIRED = "required"
DEFAULT_DEFERRABLE = "[operators] default_deferrable"
_NOT_STATED = object()


# --- what the code says ---------------------------------------------------------------------------


def provider_classes() -> dict[str, type]:
    """Every public class defined in the package's modules, by name, and in the sandbox's."""
    classes: dict[str, type] = {}
    modules = [
        *pkgutil.walk_packages(airflow_provider_leadpipe.__path__, f"{PACKAGE}."),
        *pkgutil.walk_packages(leadpipe_sandbox.__path__, f"{leadpipe_sandbox.__name__}."),
    ]
    for info in modules:
        if ".plugins" in info.name or info.name.endswith("__main__"):
            continue  # the UI plugin imports Airflow's web app; it has no documented signatures
        if info.name == f"{PACKAGE}.utils.retry_policy" and not AIRFLOW_V_3_3_PLUS:
            continue  # Airflow 3.3's retry policies: importing it before 3.3 raises on purpose
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == info.name and not name.startswith("_"):
                classes[name] = value
    return classes


CLASSES = provider_classes()


def user_facing_classes() -> list[str]:
    kinds = (f"{PACKAGE}.operators.", f"{PACKAGE}.sensors.")
    names = [
        name
        for name, cls in CLASSES.items()
        if cls.__module__.startswith(kinds) and name.endswith(("Operator", "Sensor")) and "Base" not in name
    ]
    return sorted(
        [
            *names,
            "LeadpipeAccountEventTrigger",
            "LeadpipeAudienceRunEventTrigger",
            "LeadpipeCreditsLowEventTrigger",
            "LeadpipeSandbox",
        ]
    )


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    default: Any  # inspect.Parameter.empty: none; _NOT_STATED: unknown (a **kwargs TypedDict key)


def _params(func: Callable[..., Any], signature: inspect.Signature) -> list[Param]:
    found = []
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            found.extend(_typed_kwargs(func, param.name))
        found.append(Param(param.name, param.kind, param.default))
    return found


def _typed_kwargs(func: Callable[..., Any], name: str) -> list[Param]:
    """`**where: Unpack[Where]` stands for the TypedDict's keys, each keyword-only."""
    try:
        # The package imports Unpack only for type checkers (TYPE_CHECKING); supply it here.
        hint = typing.get_type_hints(
            func, localns={"Unpack": typing_extensions.Unpack}, include_extras=True
        ).get(name)
    except (NameError, TypeError):  # an annotation that does not resolve: treat as plain **kwargs
        return []
    args = typing.get_args(hint)
    # By name: typing_extensions.Unpack is another object than typing.Unpack before Python 3.12.
    if (
        getattr(typing.get_origin(hint), "_name", None) == "Unpack"
        and args
        and hasattr(args[0], "__annotations__")
    ):
        return [Param(key, inspect.Parameter.KEYWORD_ONLY, _NOT_STATED) for key in args[0].__annotations__]
    return []


@dataclass
class Target:
    """A documented callable: its parameters, and for a class its own and templated ones."""

    label: str
    params: list[Param]
    own: list[str]
    template_fields: tuple[str, ...] = ()
    positional: tuple[str, ...] | None = None  # for a class: what its constructor takes by position

    def positional_names(self) -> list[str]:
        if self.positional is not None:
            return list(self.positional)
        return [p.name for p in self.params if p.kind.name in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]

    def param(self, name: str) -> Param | None:
        return next((param for param in self.params if param.name == name), None)


def class_target(cls: type) -> Target:
    """Parameters of `cls` through its MRO (the most derived declaration of a name wins)."""
    params: dict[str, Param] = {}
    airflow_names: set[str] = set()
    own: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        declared = [
            param
            for param in _params(init, inspect.signature(init))
            if param.name != "self" and param.kind not in (param.kind.VAR_POSITIONAL, param.kind.VAR_KEYWORD)
        ]
        if klass.__module__.startswith(OWN_PACKAGES):
            own.extend(param.name for param in declared if param.name not in own)
        else:
            airflow_names.update(param.name for param in declared)
        for param in declared:
            params.setdefault(param.name, param)
    own = [name for name in own if name not in airflow_names and not name.startswith("_")]
    # inspect.signature(cls) keeps the order (and kinds) a caller sees for the leading arguments.
    leading = _params(cls, inspect.signature(cls))
    ordered = [params.pop(p.name) for p in leading if p.name in params]
    positional = tuple(p.name for p in leading if p.kind.name in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"))
    return Target(
        cls.__name__,
        ordered + list(params.values()),
        own,
        tuple(getattr(cls, "template_fields", ())),
        positional,
    )


def function_target(label: str, func: Callable[..., Any]) -> Target:
    params = [p for p in _params(func, inspect.signature(func)) if p.name not in ("self", "cls")]
    return Target(label, params, [])


PAGE_OWNERS = {"docs/sandbox.md": ("LeadpipeSandbox", "Fault")}
DEFAULT_OWNERS = ("LeadpipeHook",)
PREFIXES = {"hook": "LeadpipeHook", "sandbox": "LeadpipeSandbox", "leadpipe_sandbox": "LeadpipeSandbox"}


def resolve(name: str, page: Page) -> Target | None:
    if name in CLASSES:
        return class_target(CLASSES[name])
    if name.startswith(f"{PACKAGE}."):
        module_name, _, attr = name.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            return None
        return class_target(value) if inspect.isclass(value) else function_target(name, value)
    owner, dot, method = name.rpartition(".")
    owners = (PREFIXES.get(owner, owner),) if dot else PAGE_OWNERS.get(page.id, DEFAULT_OWNERS)
    for owner_name in owners:
        func = getattr(CLASSES.get(owner_name), method, None)
        if callable(func):
            return function_target(f"{owner_name}.{method}", func)
    return None


# --- what the docs say ----------------------------------------------------------------------------


@dataclass
class Table:
    page: Page
    line: int
    header: list[str]
    rows: list[list[Token]]
    headings: list[str]  # the headings enclosing the table, innermost first

    def column(self, name: str) -> int | None:
        lowered = [cell.lower() for cell in self.header]
        return lowered.index(name.lower()) if name.lower() in lowered else None


def tables(page: Page) -> Iterator[Table]:
    enclosing: list[tuple[int, str]] = []
    tokens = page.tokens
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            level = int(token.tag[1])
            enclosing = [(lvl, text) for lvl, text in enclosing if lvl < level]
            enclosing.append((level, plain_text(tokens[index + 1])))
        elif token.type == "table_open":
            header: list[str] = []
            rows: list[list[Token]] = []
            row: list[Token] = []
            in_head = False
            for cell in tokens[index + 1 :]:
                if cell.type == "table_close":
                    break
                if cell.type in ("thead_open", "thead_close"):
                    in_head = cell.type == "thead_open"
                elif cell.type == "inline":
                    if in_head:
                        header.append(plain_text(cell).strip())
                    else:
                        row.append(cell)
                elif cell.type == "tr_close" and row:
                    rows.append(row)
                    row = []
            headings = [text for _, text in reversed(enclosing)]
            yield Table(page, page.lineno(token), header, rows, headings)


def argument_tables(page: Page) -> Iterator[Table]:
    for table in tables(page):
        if table.header and table.header[0].lower() == "argument":
            yield table


def table_class(table: Table) -> str | None:
    for heading in table.headings:
        named = [word for word in re.findall(r"\w+", heading) if word in CLASSES]
        if named:
            return named[0]
    return None


def argument_name(cell: Token) -> str | None:
    codes = [child.content for child in cell.children or () if child.type == "code_inline"]
    return codes[0] if len(codes) == 1 and codes[0].isidentifier() else None


def parse_default(text: str) -> Any:
    text = text.strip()
    if text.startswith("`") and text.endswith("`"):
        text = text[1:-1]
    if text in (REQUIRED, DEFAULT_DEFERRABLE):
        return text
    return ast.literal_eval(text)


def check_table(table: Table) -> tuple[str | None, list[str]]:
    """(the class it documents, what disagrees with the code)."""
    where = f"{table.page.id}:{table.line}"
    class_name = table_class(table)
    if class_name is None:
        return None, [f"{where}: argument table under no heading naming a provider class"]
    target = class_target(CLASSES[class_name])
    default_col, templated_col = table.column("Default"), table.column("Templated")
    problems = []
    listed = []
    for row in table.rows:
        name = argument_name(row[0])
        if name is None:
            problems.append(f"{where}: {class_name}: first cell {row[0].content!r} is not one `argument`")
            continue
        listed.append(name)
        param = target.param(name)
        if param is None:
            problems.append(f"{where}: {class_name} takes no argument {name!r}")
            continue
        if default_col is not None:
            problems.extend(_default_problems(where, target, param, row[default_col].content))
        if templated_col is not None:
            stated = row[templated_col].content.strip().lower()
            real = "yes" if name in target.template_fields else "no"
            if stated != real:
                problems.append(f"{where}: {class_name}.{name}: Templated says {stated!r}, the code: {real}")
    if default_col is not None:
        for name in target.own:
            if name not in listed:
                problems.append(f"{where}: {class_name}'s argument {name!r} is not in its table")
        for name in {name for name in listed if listed.count(name) > 1}:
            problems.append(f"{where}: {class_name}: {name!r} has two rows")
    return (class_name if default_col is not None else None), problems


def _default_problems(where: str, target: Target, param: Param, cell: str) -> list[str]:
    label = f"{where}: {target.label}.{param.name}"
    try:
        stated = parse_default(cell)
    except (ValueError, SyntaxError):
        return [f"{label}: Default {cell!r} is not a Python literal, {REQUIRED!r} or {DEFAULT_DEFERRABLE!r}"]
    real = param.default
    if stated == REQUIRED:
        return (
            [] if real is inspect.Parameter.empty else [f"{label}: stated required, the default is {real!r}"]
        )
    if real is inspect.Parameter.empty:
        return [f"{label}: stated default {cell}, but the argument is required"]
    if stated == DEFAULT_DEFERRABLE:
        return (
            []
            if param.name == "deferrable" and real is None
            else [f"{label}: {cell} is only for `deferrable`"]
        )
    return [] if same_value(stated, real) else [f"{label}: stated default {cell}, the code's is {real!r}"]


def same_value(stated: Any, real: Any) -> bool:
    if isinstance(stated, bool) or isinstance(real, bool):
        return type(stated) is type(real) and stated == real
    if isinstance(stated, int | float) and isinstance(real, int | float):
        return stated == real
    return type(stated) is type(real) and stated == real


@dataclass
class Signature:
    page: Page
    line: int
    name: str
    text: str
    in_table: bool


_SPAN = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.DOTALL)


def inline_signatures(page: Page) -> Iterator[Signature]:
    tokens = page.tokens
    in_first_cell = False
    for index, token in enumerate(tokens):
        if token.type in ("th_open", "td_open"):
            in_first_cell = tokens[index - 1].type == "tr_open"
        elif token.type in ("th_close", "td_close"):
            in_first_cell = False
        elif token.type == "inline":
            for child in token.children or ():
                match = _SPAN.match(child.content) if child.type == "code_inline" else None
                if match:
                    yield Signature(page, page.lineno(token), match[1], match[2], in_first_cell)


@dataclass
class Stated:
    name: str
    kind: str  # "positional", "keyword" (after `*`), "varargs", "varkw"
    default: Any  # inspect.Parameter.empty: none stated; Ellipsis: "..." (not stated)
    after_ellipsis: bool = False  # shown after a `...`: where it sits says nothing


def parse_params(text: str) -> tuple[list[Stated], bool] | None:
    """The stated parameters and whether `...` stands for more; None when it is no parameter list."""
    text = text.replace("…", "...")
    parts = [part.strip() for part in text.split(",")]
    partial = "..." in parts
    before_ellipsis = parts.index("...") if partial else len(parts)
    source = ", ".join(part for part in parts if part != "...")
    try:
        tree = ast.parse(f"def f({source}): pass")
    except SyntaxError:
        return None
    args = tree.body[0].args  # type: ignore[attr-defined]
    stated: list[Stated] = []
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        stated.append(Stated(arg.arg, "positional", _literal(default)))
    if args.vararg:
        stated.append(Stated(args.vararg.arg, "varargs", inspect.Parameter.empty))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        stated.append(Stated(arg.arg, "keyword", _literal(default)))
    if args.kwarg:
        stated.append(Stated(args.kwarg.arg, "varkw", inspect.Parameter.empty))
    for param in stated[before_ellipsis:]:
        param.after_ellipsis = True
    return stated, partial


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return inspect.Parameter.empty
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _NOT_STATED


def is_signature(sig: Signature, stated: list[Stated], partial: bool, target: Target) -> bool:
    if sig.in_table or partial or "*" in sig.text:
        return True
    if any(param.default is inspect.Parameter.empty for param in stated):
        return True
    return {param.name for param in stated} >= {
        param.name for param in target.params if param.kind.name not in ("VAR_POSITIONAL", "VAR_KEYWORD")
    }


def check_signature(sig: Signature) -> tuple[str | None, list[str]]:
    """(the class a complete class signature documents, what disagrees with the code)."""
    where = f"{sig.page.id}:{sig.line}: {sig.name}(...)"
    parsed = parse_params(sig.text)
    target = resolve(sig.name, sig.page)
    if parsed is None or target is None:
        unknown = sig.in_table and parsed is not None
        return None, [f"{where}: no such callable in the provider"] if unknown else []
    stated, partial = parsed
    if not is_signature(sig, stated, partial, target):
        return None, []
    problems = []
    positional_code = target.positional_names()
    positional_doc = [p.name for p in stated if p.kind == "positional" and not p.after_ellipsis]
    for param in stated:
        real = target.param(param.name)
        if param.kind in ("varargs", "varkw"):
            kind = "VAR_POSITIONAL" if param.kind == "varargs" else "VAR_KEYWORD"
            if real is None or real.kind.name != kind:
                problems.append(
                    f"{where}: the code has no {'*' if kind == 'VAR_POSITIONAL' else '**'}{param.name}"
                )
            continue
        if real is None:
            problems.append(f"{where}: no argument {param.name!r}")
            positional_doc = []  # one message per wrong name is enough
            continue
        if param.default is inspect.Parameter.empty and not param.after_ellipsis:
            if real.default is not inspect.Parameter.empty and real.default is not _NOT_STATED:
                problems.append(
                    f"{where}: {param.name} is shown without a default, the code's is {real.default!r}"
                )
        elif (
            param.default not in (inspect.Parameter.empty, Ellipsis, _NOT_STATED)
            and real.default is not _NOT_STATED
        ):
            if real.default is inspect.Parameter.empty:
                problems.append(f"{where}: {param.name}={param.default!r} stated, but it is required")
            elif not same_value(param.default, real.default):
                problems.append(
                    f"{where}: {param.name}={param.default!r} stated, the code's default is {real.default!r}"
                )
    if positional_doc != positional_code[: len(positional_doc)]:
        problems.append(
            f"{where}: shown positional {positional_doc}, "
            f"but only {positional_code} can be passed by position"
        )
    complete_class = target.own and not partial
    if complete_class:
        missing = [name for name in target.own if name not in {p.name for p in stated}]
        if missing:
            problems.append(f"{where}: a complete signature of {target.label} without {missing}")
    return (target.label if complete_class else None), problems


_EXTRA_ROW = re.compile(r"^Extra `(\w+)`$")
_STATED_DEFAULT = re.compile(r"\bdefault (-?\d+(?:\.\d+)?)\b")
_STATED_MAXIMUM = re.compile(r"\bat most (\d+)\b")
_STATED_RANGE = re.compile(r"\b(\d+)-(\d+)\b")


def extra_problems(page: Page) -> list[str]:
    """Rows `Extra `name`` of a connection table name a field of the Connections form; a stated
    "default N" is the hook's default, "at most N" and "A-B" the form's bounds."""
    from airflow_provider_leadpipe import CONN_FIELDS
    from airflow_provider_leadpipe.hooks.settings import ApiSettings

    defaults = {f.name: f.default for f in dataclasses.fields(ApiSettings)}
    problems = []
    for table in tables(page):
        for row in table.rows:
            match = _EXTRA_ROW.match(row[0].content.strip())
            if not match:
                continue
            name, text = match[1], " ".join(cell.content for cell in row[1:])
            where = f"{page.id}:{table.line}: extra {name!r}"
            if name not in CONN_FIELDS:
                problems.append(f"{where}: not a field of the connection form (the hook does not read it)")
                continue
            schema = CONN_FIELDS[name]["schema"]
            stated = [(float(n), defaults[name], "default") for n in _STATED_DEFAULT.findall(text)]
            stated += [(float(n), schema.get("maximum"), "maximum") for n in _STATED_MAXIMUM.findall(text)]
            for low, high in _STATED_RANGE.findall(text):
                stated += [
                    (float(low), schema.get("minimum"), "minimum"),
                    (float(high), schema.get("maximum"), "maximum"),
                ]
            problems += [
                f"{where}: {what} {number:g} stated, the code's is {real!r}"
                for number, real, what in stated
                if number != real
            ]
    return problems


_CLI_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
_CLI_DEFAULT = re.compile(r"^\s*\(default `([^`]*)`")


def cli_problems(page: Page) -> list[str]:
    """The sandbox CLI's options named on docs/sandbox.md (or after `leadpipe-sandbox` anywhere)
    exist, and an option followed by "(default `X`)" has that default."""
    from leadpipe_sandbox.cli import _parser

    parser = _parser()
    options = {option: action for action in parser._actions for option in action.option_strings}
    problems = []
    for block, child in inline_tokens(page):
        if child.type != "code_inline":
            continue
        content = child.content
        on_sandbox_page = page.id == "docs/sandbox.md" and content.startswith("--")
        if not on_sandbox_page and not content.startswith(
            ("leadpipe-sandbox ", "python -m leadpipe_sandbox")
        ):
            continue
        where = f"{page.id}:{page.lineno(block)}"
        for option in _CLI_OPTION.findall(child.content):
            if option not in options:
                problems.append(f"{where}: leadpipe-sandbox has no option {option}")
        stated = _CLI_DEFAULT.match(_text_after(block, child))
        option = child.content.split()[0]
        if stated and option in options and str(options[option].default) != stated[1]:
            problems.append(
                f"{where}: {option}: default `{stated[1]}` stated, the CLI's is {options[option].default!r}"
            )
    for token in page.tokens:
        if token.type != "fence":
            continue
        for offset, line in enumerate(token.content.splitlines(), start=page.lineno(token) + 1):
            if line.startswith(("leadpipe-sandbox", "python -m leadpipe_sandbox")):
                command = line.split("#")[0]
                problems += [
                    f"{page.id}:{offset}: leadpipe-sandbox has no option {option}"
                    for option in _CLI_OPTION.findall(command)
                    if option not in options
                ]
    return problems


def _text_after(block: Token, child: Token) -> str:
    siblings = list(block.children or ())
    following = siblings[siblings.index(child) + 1 : siblings.index(child) + 3]
    return "".join(
        f"`{token.content}`" if token.type == "code_inline" else token.content for token in following
    )


# --- the tests ------------------------------------------------------------------------------------


def page_problems(page: Page) -> tuple[list[str], list[str]]:
    documented, problems = [], []
    for table in argument_tables(page):
        class_name, found = check_table(table)
        documented += [class_name] if class_name else []
        problems += found
    for sig in inline_signatures(page):
        class_name, found = check_signature(sig)
        documented += [class_name] if class_name else []
        problems += found
    return documented, problems + extra_problems(page) + cli_problems(page)


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_tables_and_signatures_match_the_code(path: Path) -> None:
    _, problems = page_problems(load(path))
    assert not problems, "\n".join(problems)


def test_every_user_facing_class_has_an_argument_table() -> None:
    documented = [name for path in PAGES for name in page_problems(load(path))[0]]
    missing = [name for name in user_facing_classes() if name not in documented]
    assert not missing, f"no argument table or complete signature in README.md or docs/: {missing}"
    assert len(documented) >= len(user_facing_classes())


# --- the checker itself finds what it should ------------------------------------------------------


def _page(tmp_path: Path, text: str, name: str = "page.md") -> Page:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load(path)


def test_a_wrong_table_is_reported(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "# Pull visitors\n\n## `LeadpipeVisitorsToStorageOperator` arguments\n\n"
        "| Argument | Templated | Default | Meaning |\n|---|---|---|---|\n"
        "| `path` | yes | required | target |\n"
        '| `timeframe` | no | `"7d"` | wrong default, wrong templated |\n'
        "| `concurrency` | no | 4 | right |\n"
        "| `pages` | no | None | no such argument |\n",
    )
    _, problems = page_problems(page)
    text = "\n".join(problems)
    assert "timeframe: Templated says 'no', the code: yes" in text
    assert 'timeframe: stated default `"7d"`, the code\'s is None' in text
    assert "takes no argument 'pages'" in text
    assert "argument 'hook_params' is not in its table" in text  # inherited from the base operator
    assert "argument 'path'" not in text and "concurrency" not in text


def test_a_wrong_inline_signature_is_reported(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "# Pixels\n\n"
        "`hook.create_pixel(domain, name=None, included_paths=None,\n"
        'excluded_paths=None, if_exists="error")`\n'
        'and `hook.update_pixel(pixel_id, status=None)`; `hook.iter_visitors(timeframe="7d")` is a call.\n\n'
        "| Method | Notes |\n|---|---|\n| `list_audiences(state=None)` | |\n| `no_such_method(x)` | |\n",
    )
    _, problems = page_problems(page)
    assert len(problems) == 3, problems  # update_pixel and the iter_visitors call are right
    assert (
        "but only ['domain', 'name', 'included_paths', 'excluded_paths'] can be passed by position"
        in problems[0]
    )
    assert "no argument 'state'" in problems[1]
    assert "no_such_method(...): no such callable" in problems[2]


def test_the_docs_have_tables_to_check() -> None:
    # Guards the reader: if it stopped finding tables or signatures, the checks would pass vacuously.
    tables_found = [
        t for path in PAGES for t in argument_tables(load(path)) if t.column("Default") is not None
    ]
    signatures = [s for path in PAGES for s in inline_signatures(load(path))]
    assert len(tables_found) >= 8
    assert len(signatures) >= 40
    assert REPO.joinpath("docs", "orbit.md") in {t.page.path for t in tables_found}


def test_a_wrong_cli_option_or_connection_default_is_reported(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "# CLI\n\nRun `leadpipe-sandbox --port 0 --seeds 7`.\n\n"
        "```bash\nleadpipe-sandbox --visitor 10   # typo\n```\n\n"
        "| Field | Meaning |\n|---|---|\n"
        "| Extra `timeout` | seconds, 1-900 (default 60) |\n| Extra `retries` | |\n",
    )
    _, problems = page_problems(page)
    assert problems == [
        "page.md:9: extra 'timeout': default 60 stated, the code's is 30.0",
        "page.md:9: extra 'timeout': maximum 900 stated, the code's is 600",
        "page.md:9: extra 'retries': not a field of the connection form (the hook does not read it)",
        "page.md:3: leadpipe-sandbox has no option --seeds",
        "page.md:6: leadpipe-sandbox has no option --visitor",
    ]
