"""The project's own files: dependencies agree, CI calls the README's test command."""
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_has_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    text = (REPO / "environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    listed = {ln.strip()[2:].replace(" ", "") for ln in pip_block.splitlines()
              if ln.strip().startswith("- ") and not ln.strip().startswith("- -e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"


def test_torch_is_never_newer_than_the_platform_cap():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {_name(r): r for r in project["dependencies"]}
    assert "<=2.14.1" in pins["torch"] and "<=0.29.1" in pins["torchvision"]
    assert "torch==2.14.1 torchvision==0.29.1" in (REPO / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^\s*(time\s+)?make test\b", ci, re.M)


def test_weights_and_course_are_packaged():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "weights/*.pt" in project["tool"]["setuptools"]["package-data"]["xai_lab"]
