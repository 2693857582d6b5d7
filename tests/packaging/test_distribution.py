"""The release artefacts: the sdist and the wheel build, pass ``twine check``, hold what they must,
and the wheel installed into a bare Airflow 3.3.2 environment (dependencies resolved, nothing else
installed) registers the provider and its ``leadpipe`` connection type with Airflow. The sdist holds
every git-tracked file but the CI-only ones, and a fast part of the suite passes from it unpacked.

uv builds and installs (from its cache when it can: ``--offline`` first, then the index).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_provider_leadpipe import __version__
from tests.conftest import REPO

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

AIRFLOW_VERSION = "3.3.2"
NAME = "airflow_provider_leadpipe"

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


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel uv builds from that sdist (so the sdist is proven complete)."""
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--quiet", "--out-dir", out, REPO)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_both_artefacts_carry_the_version_and_pass_twine_check(dist):
    assert dist["sdist"].name == f"airflow_provider_leadpipe-{__version__}.tar.gz"
    assert dist["wheel"].name == f"airflow_provider_leadpipe-{__version__}-py3-none-any.whl"
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", dist["sdist"], dist["wheel"]],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_holds_the_typing_marker_the_license_and_the_contract(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"airflow_provider_leadpipe-{__version__}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        license_text = wheel.read(f"{info}/licenses/LICENSE").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert f"{NAME}/py.typed" in names
    assert f"{NAME}/testing/contract/leadpipe-account-openapi.yaml" in names
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "License-Expression: Apache-2.0" in metadata
    assert "provider_info = airflow_provider_leadpipe:get_provider_info" in entry_points
    assert all(name.startswith((f"{NAME}/", f"{info}/")) for name in names), sorted(names)  # package only


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
        f"{NAME}/testing/contract/leadpipe-account-openapi.yaml",
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

    # Installed from the wheel, not from this checkout; the contract ships with it.
    probe = (
        "import airflow_provider_leadpipe as p, leadpipe_sandbox.contract as c;"
        "print(p.__file__); print(c.ACCOUNT_OPENAPI.is_file())"
    )
    done = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    location, contract_found = done.stdout.split()
    assert Path(location).is_relative_to(venv) and contract_found == "True"
