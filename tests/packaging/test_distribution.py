"""The release artefacts: the provider's sdist and wheel and the sandbox's (``sandbox/``,
distribution ``leadpipe-sandbox``) build, pass ``twine check``, hold what they must, and each wheel
installs alone. The provider wheel in a bare Airflow 3.3.2 environment (dependencies resolved,
nothing else installed) registers the provider and its ``leadpipe`` connection type with Airflow and
carries no sandbox code; the sandbox wheel in a bare venv without Airflow serves the API. The
provider's sdist holds every git-tracked file but the CI-only ones, and a fast part of the suite
passes from it unpacked.

uv builds and installs (from its cache when it can: ``--offline`` first, then the index).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from airflow_provider_leadpipe import __version__
from leadpipe_sandbox import __version__ as sandbox_version
from tests.conftest import REPO

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

AIRFLOW_VERSION = "3.3.2"
NAME = "airflow_provider_leadpipe"
SANDBOX = "leadpipe_sandbox"

#: Git-tracked paths (files, or folders ending in "/") the sdist leaves out on purpose. Anything
#: else tracked must ship, so a new top-level file or folder cannot be left out silently.
NOT_IN_SDIST = (
    ".ci/",  # the CI entry point of a clone; the sdist's own entry point is scripts/test.sh
)
#: Files the build writes into the sdist that git does not track.
BUILT_INTO_SDIST = {"PKG-INFO"}
#: A part of the suite that needs no network, no Airflow services and no build, and runs in a few
#: seconds: the docs' links and argument tables checked against the sdist's own code.
SDIST_SUITE = ("tests/docs/test_links.py", "tests/docs/test_signatures.py")


def uv(*args: str | Path, cwd: Path | None = None) -> str:
    """Run uv (from the test extra), offline first so a warm cache needs no network."""
    from uv import find_uv_bin

    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    command = [find_uv_bin(), *map(str, args)]
    done = subprocess.run([*command, "--offline"], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:  # something is not in the cache yet
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build(source: Path, out: Path) -> dict[str, Path]:
    """The sdist, and the wheel uv builds from that sdist (so the sdist is proven complete)."""
    uv("build", "--quiet", "--out-dir", out, source)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The provider's sdist and wheel."""
    return _build(REPO, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def sandbox_dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sandbox's sdist and wheel, built from ``sandbox/``."""
    return _build(REPO / "sandbox", tmp_path_factory.mktemp("sandbox-dist"))


def test_both_artefacts_carry_the_version_and_pass_twine_check(dist, sandbox_dist):
    assert dist["sdist"].name == f"airflow_provider_leadpipe-{__version__}.tar.gz"
    assert dist["wheel"].name == f"airflow_provider_leadpipe-{__version__}-py3-none-any.whl"
    assert sandbox_dist["sdist"].name == f"leadpipe_sandbox-{sandbox_version}.tar.gz"
    assert sandbox_dist["wheel"].name == f"leadpipe_sandbox-{sandbox_version}-py3-none-any.whl"
    artefacts = [dist["sdist"], dist["wheel"], sandbox_dist["sdist"], sandbox_dist["wheel"]]
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *artefacts],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 4, done.stdout


def _wheel(path: Path, name: str, version: str) -> tuple[set[str], str, str, str]:
    """A wheel's file names, METADATA, license text and entry_points.txt."""
    with zipfile.ZipFile(path) as wheel:
        info = f"{name}-{version}.dist-info"
        return (
            set(wheel.namelist()),
            wheel.read(f"{info}/METADATA").decode(),
            wheel.read(f"{info}/licenses/LICENSE").decode(),
            wheel.read(f"{info}/entry_points.txt").decode(),
        )


def test_the_wheel_holds_the_typing_marker_the_license_and_no_sandbox(dist):
    names, metadata, license_text, entry_points = _wheel(dist["wheel"], NAME, __version__)
    info = f"{NAME}-{__version__}.dist-info"
    assert f"{NAME}/py.typed" in names
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "License-Expression: Apache-2.0" in metadata
    assert "provider_info = airflow_provider_leadpipe:get_provider_info" in entry_points
    assert all(name.startswith((f"{NAME}/", f"{info}/")) for name in names), sorted(names)  # package only
    sandbox_code = sorted(name for name in names if name.startswith(f"{NAME}/testing/") or SANDBOX in name)
    assert not sandbox_code, sandbox_code
    assert "[pytest11]" not in entry_points and "[console_scripts]" not in entry_points, entry_points
    # The extra names the sandbox's distribution; nothing of it is required.
    assert "Provides-Extra: sandbox" in metadata
    assert re.search(r"^Requires-Dist: leadpipe-sandbox\b.*; extra == 'sandbox'$", metadata, re.M), metadata


def test_the_sandbox_wheel_holds_the_contract_the_plugin_and_the_command(sandbox_dist):
    names, metadata, license_text, entry_points = _wheel(sandbox_dist["wheel"], SANDBOX, sandbox_version)
    info = f"{SANDBOX}-{sandbox_version}.dist-info"
    assert f"{SANDBOX}/py.typed" in names
    assert f"{SANDBOX}/contract/leadpipe-account-openapi.yaml" in names
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "License-Expression: Apache-2.0" in metadata
    assert "[pytest11]\nleadpipe = leadpipe_sandbox.pytest_plugin" in entry_points
    assert "[console_scripts]\nleadpipe-sandbox = leadpipe_sandbox.cli:main" in entry_points
    assert all(name.startswith((f"{SANDBOX}/", f"{info}/")) for name in names), sorted(names)
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", metadata, re.M)
    assert not [name for name in requires if "airflow" in name.lower()], requires


def test_the_sdist_holds_the_license_changelog_and_tests(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        root = f"airflow_provider_leadpipe-{__version__}"
        names = {name.removeprefix(f"{root}/") for name in sdist.getnames()}
    for required in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        f"{NAME}/py.typed",
        "sandbox/pyproject.toml",
        f"sandbox/{SANDBOX}/contract/leadpipe-account-openapi.yaml",
        "sandbox/tests/conftest.py",
        "tests/conftest.py",
    ):
        assert required in names, required


def git_files(*args: str) -> set[str]:
    done = subprocess.run(
        ["git", "ls-files", "-z", *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(filter(None, done.stdout.split("\0")))


def test_the_sdist_holds_every_tracked_file_but_the_ci_only_ones(dist):
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout (e.g. an unpacked sdist): nothing to compare with")
    with tarfile.open(dist["sdist"]) as sdist:
        root = f"airflow_provider_leadpipe-{__version__}/"
        names = {member.name.removeprefix(root) for member in sdist.getmembers() if member.isfile()}
    tracked = git_files()
    # A file not added to git yet (but not ignored) ships too: fine while developing, absent in CI.
    untracked = git_files("--others", "--exclude-standard")

    def matches(name: str, path: str) -> bool:
        return name == path or (path.endswith("/") and name.startswith(path))

    def excluded(name: str) -> bool:
        return any(matches(name, path) for path in NOT_IN_SDIST)

    stale = [path for path in NOT_IN_SDIST if not any(matches(name, path) for name in tracked)]
    assert not stale, f"NOT_IN_SDIST names what git does not track: {stale}"
    missing = sorted(name for name in tracked if not excluded(name) and name not in names)
    assert not missing, f"tracked but not in the sdist: {missing}"
    unexpected = sorted(
        name for name in names - BUILT_INTO_SDIST if excluded(name) or name not in tracked | untracked
    )
    assert not unexpected, f"in the sdist but CI-only, generated or ignored by git: {unexpected}"


def test_a_fast_part_of_the_suite_passes_from_the_unpacked_sdist(dist, tmp_path_factory):
    target = tmp_path_factory.mktemp("sdist")
    with tarfile.open(dist["sdist"]) as sdist:
        sdist.extractall(target, filter="data")
    unpacked = target / f"airflow_provider_leadpipe-{__version__}"
    # The project's venv (its editable install points at this checkout): pytest runs in the
    # unpacked tree and must import the package and the tests from there, which it reports last.
    run = (
        "import sys, pytest;"
        f"code = pytest.main(['-q', '-p', 'no:cacheprovider', '--basetemp', {str(target / 'tmp')!r},"
        f" *{list(SDIST_SUITE)!r}]);"
        "print(sys.modules['airflow_provider_leadpipe'].__file__);"
        "print(sys.modules['tests.docs.markdown_pages'].__file__);"
        "sys.exit(code)"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    done = subprocess.run([sys.executable, "-c", run], cwd=unpacked, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    *output, package, tests = done.stdout.splitlines()
    assert Path(package).is_relative_to(unpacked) and Path(tests).is_relative_to(unpacked), (package, tests)
    assert " passed" in output[-1] and "failed" not in output[-1] and "skipped" not in output[-1], output[-1]


def test_the_wheel_registers_the_provider_in_a_bare_airflow(dist, tmp_path_factory):
    root = tmp_path_factory.mktemp("bare-airflow")
    venv = root / "venv"
    uv("venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    # A normal install: the wheel's own dependencies are resolved, next to Airflow itself.
    uv("pip", "install", "--quiet", "--python", python, dist["wheel"], f"apache-airflow=={AIRFLOW_VERSION}")

    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(root),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }

    def airflow(*args: str) -> list[dict]:
        done = subprocess.run(
            [venv / "bin" / "airflow", *args, "--output", "json"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    providers = {row["package_name"]: row for row in airflow("providers", "list")}
    assert providers["airflow-provider-leadpipe"]["version"] == __version__
    hooks = {row["connection_type"]: row for row in airflow("providers", "hooks")}
    assert hooks["leadpipe"]["class"] == "airflow_provider_leadpipe.hooks.leadpipe.LeadpipeHook"
    assert hooks["leadpipe"]["package_name"] == "airflow-provider-leadpipe"

    # Installed from the wheel, not from this checkout, and alone: no sandbox, no pytest plugin.
    probe = (
        "import importlib.metadata as m, importlib.util as u, airflow_provider_leadpipe as p;"
        "print(p.__file__);"
        f"print(u.find_spec('{NAME}.testing') is None, u.find_spec('{SANDBOX}') is None);"
        "print(sorted(e.group for e in m.distribution('airflow-provider-leadpipe').entry_points))"
    )
    done = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    location, no_sandbox, groups = done.stdout.splitlines()
    assert Path(location).is_relative_to(venv)
    assert no_sandbox == "True True"
    assert groups == "['airflow.plugins', 'apache_airflow_provider']"


def test_the_sandbox_wheel_alone_serves_the_api_without_airflow(sandbox_dist, tmp_path_factory):
    root = tmp_path_factory.mktemp("bare-sandbox")
    venv = root / "venv"
    uv("venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", python, sandbox_dist["wheel"])
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(root)}

    probe = (
        "import importlib.metadata as m, importlib.util as u, leadpipe_sandbox.contract as c;"
        "print(c.__file__); print(c.ACCOUNT_OPENAPI.is_file(), u.find_spec('airflow') is None);"
        "print([e.value for e in m.entry_points(group='pytest11', name='leadpipe')])"
    )
    done = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    location, found, plugins = done.stdout.splitlines()
    assert Path(location).is_relative_to(venv)
    assert found == "True True"  # the contract ships; Airflow is not installed
    assert plugins == "['leadpipe_sandbox.pytest_plugin']"

    command = venv / "bin" / "leadpipe-sandbox"
    done = subprocess.run([command, "--help"], env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0 and "--visitors" in done.stdout, done.stdout + done.stderr

    server = subprocess.Popen(
        [command, "--port", "0", "--visitors", "5"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = server.stdout.readline()  # type: ignore[union-attr]  # printed once the socket listens
        listening = re.fullmatch(r"Leadpipe API sandbox listening on (http://127\.0\.0\.1:\d+)\s*", banner)
        assert listening, banner + server.stdout.read()  # type: ignore[union-attr]
        # The request waits in the socket's backlog until uvicorn serves; the timeout is a safety net.
        response = httpx.get(
            f"{listening[1]}/v1/data", headers={"X-API-Key": "sk_test_sandbox"}, trust_env=False, timeout=120
        )
        assert response.status_code == 200, response.text
        assert response.json()["meta"]["total"] == 5
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        server.kill()
        server.wait()
