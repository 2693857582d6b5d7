"""README's first run, as a newcomer does it: the bash block under "Install, and a first run without
a key", line by line, in a fresh venv that already has Airflow (pip included) and a fresh
AIRFLOW_HOME whose database is migrated, from a copy of the checkout's tracked files.

Two things are done for the reader, as a person at a terminal does them: the sandbox's line runs in
the background and the next line waits until it has printed its banner (a person reads the banner
before exporting the line it shows), and its port is a free one instead of README's 8765, in the
sandbox's line and the exported line alike. Every other line runs as shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.packaging.test_distribution import AIRFLOW_VERSION, uv
from tests.ports import free_port

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

SECTION = "## Install, and a first run without a key"
SANDBOX_LINE = re.compile(r"^leadpipe-sandbox --port (\d+) &")
EXPORT = re.compile(r"^export (AIRFLOW_CONN_LEADPIPE_DEFAULT)='(.*)'")


def readme_block() -> list[str]:
    """The lines of the first bash block of README's install section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's install section has no bash block"
    return block[1].rstrip("\n").splitlines()


def copy_checkout(target: Path) -> Path:
    """The git-tracked files of this checkout, as a clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_readme_first_run_in_an_existing_airflow(tmp_path_factory):
    lines = readme_block()
    (start,) = [i for i, line in enumerate(lines) if SANDBOX_LINE.match(line)]
    (export,) = [i for i, line in enumerate(lines) if EXPORT.match(line)]
    assert export == start + 1, "the connection line is exported right after the sandbox starts"
    readme_port = SANDBOX_LINE.match(lines[start])[1]  # type: ignore[index]

    root = tmp_path_factory.mktemp("first-hour")
    checkout = copy_checkout(root / "checkout")
    venv = root / "venv"
    # "The Airflow you already have": a venv with pip, Airflow and its dependencies, nothing else.
    uv("venv", "--quiet", "--clear", "--seed", "--python", sys.executable, venv)
    uv("pip", "install", "--quiet", "--python", venv / "bin" / "python", f"apache-airflow=={AIRFLOW_VERSION}")
    airflow_home = root / "airflow"
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(root),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "SSL_CERT_FILE", "LANG"):
        if name in os.environ:
            env[name] = os.environ[name]
    migrated = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    before = {d.metadata["Name"].lower(): d.version for d in _distributions(venv)}

    def bash(script: list[str]) -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    bash(lines[:start])  # install, find the DAGs folder, copy the example DAG

    after = {d.metadata["Name"].lower(): d.version for d in _distributions(venv)}
    changed = {name: (version, after[name]) for name, version in before.items() if after.get(name) != version}
    assert changed == {}, f"the install changed packages Airflow had: {changed}"
    assert {"airflow-provider-leadpipe", "leadpipe-sandbox"} <= after.keys()

    port = str(free_port())
    sandbox_line = lines[start].replace(readme_port, port).split("&")[0]
    server = subprocess.Popen(
        ["bash", "-c", f"exec {sandbox_line}"],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = [server.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        printed = [line.strip() for line in banner if line.strip().startswith("AIRFLOW_CONN_")]
        name, value = EXPORT.match(lines[export]).groups()  # type: ignore[union-attr]
        shown = f"{name}='{value.replace(readme_port, port)}'"
        assert printed == [shown], banner  # the line README exports is the one the sandbox prints
        assert json.loads(value)["host"].endswith(f":{readme_port}")

        started = _outputs()
        output = bash([lines[export].replace(readme_port, port), *lines[export + 1 :]])
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            server.kill()
    assert re.search(r"DagRun Finished: .*\bstate=success\b", output), output[-3000:]
    written = _outputs() - started
    assert written, "no visitors file was written under /tmp/leadpipe-example/visitors"


def _outputs() -> set[Path]:
    return set(Path("/tmp/leadpipe-example/visitors").glob("*.jsonl.gz"))


def _distributions(venv: Path) -> list:
    import importlib.metadata

    (site,) = (venv / "lib").glob("python3*/site-packages")
    return list(importlib.metadata.distributions(path=[str(site)]))
