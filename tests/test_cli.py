"""The installed `xai-lab` command: its help, its subcommands' help, a usage error, its entry point."""
import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

XAI_LAB = Path(sys.executable).parent / "xai-lab"
# subcommand -> a word its --help must contain (besides its name)
COMMANDS = {"release": "solutions/", "references": "reference", "autograde": "submitted/",
            "feedback": "feedback/", "demo": "demo", "table": "gradebook", "weights": "retrain",
            "figures": "docs/flowers.png", "bench": "benchmarks/", "check": "hidden tests", "workspace": "workspace/"}


def _run(*args):
    assert XAI_LAB.exists(), f"{XAI_LAB} missing: pip install -e . (pyproject.toml declares the script)"
    return subprocess.run([str(XAI_LAB), *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_subcommand():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    for name, word in COMMANDS.items():
        line = next((ln for ln in proc.stdout.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line, f"{name} is not listed:\n{proc.stdout}"
        assert len(line.split()) > 2, f"{name} has no one-line description"


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help(name):
    proc = _run(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"xai-lab {name}" in proc.stdout and COMMANDS[name].lower() in proc.stdout.lower()


def test_assignment_options_are_documented():
    text = _run("autograde", "--help").stdout
    assert "--root" in text and "--timeout" in text and "ID" in text


@pytest.mark.parametrize("args", [("release", "99_nothing"), ("autograde", "00_foundations", "99_nothing")])
def test_unknown_assignment_is_a_usage_error(args):
    proc = _run(*args)
    assert proc.returncode == 2
    assert "99_nothing" in proc.stderr and "00_foundations" in proc.stderr  # says what exists
    assert "Traceback" not in proc.stderr


def test_not_a_course_directory_is_a_usage_error(tmp_path):
    proc = _run("feedback", "--root", str(tmp_path))
    assert proc.returncode == 2 and "solutions/" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_benchmark_is_a_usage_error():
    proc = _run("bench", "nothing")
    assert proc.returncode == 2 and "'nothing'" in proc.stderr and "models" in proc.stderr


def test_console_script_points_at_an_importable_function():
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "xai-lab"]
    assert ep.value == "xai_lab.cli:main"
    module, _, attr = ep.value.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert callable(ep.load())


def test_a_plain_pip_install_gives_a_working_command(tmp_path):
    """`pip install .` (not editable): the script runs, every subpackage and the weights are installed."""
    repo = Path(__file__).resolve().parents[1]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(repo)], check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(target / "bin" / "xai-lab"), "--help"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "autograde" in proc.stdout, proc.stderr
    code = ("import xai_lab, xai_lab.explain, xai_lab.interpret, xai_lab.viz, xai_lab.course, xai_lab.models as m; "
            "print(xai_lab.__file__); m.load('single')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(target)), f"imported the development copy, not the installed one: {proc.stdout}"
