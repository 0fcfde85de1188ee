"""A student's workspace/ (xai_lab.course.workspace, `xai-lab workspace`, run by `make lab`): made from course/ the
first time, an assignment released later is added, and nothing already in it is ever changed, not even by a real
`make release` (nbgrader generate_assignment --force) of the same assignment."""
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from xai_lab import cli
from xai_lab.course import release
from xai_lab.course.workspace import sync_workspace

REPO = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too), by relative path, as bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_source(root: Path, aid: str, question: str) -> None:
    """solutions/<aid>/<aid>.ipynb: a small nbgrader source notebook (an answer cell with its solution, a test)."""
    solution = nbformat.v4.new_code_cell(
        f"def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
        metadata={"nbgrader": {"solution": True, "grade": False, "locked": False, "task": False,
                               "grade_id": "answer", "schema_version": 3}})
    test = nbformat.v4.new_code_cell(
        "assert answer() == 42", metadata={"nbgrader": {"solution": False, "grade": True, "locked": True,
                                                       "task": False, "points": 1, "grade_id": "test_answer",
                                                       "schema_version": 3}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(question), solution, test])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / "solutions" / aid / f"{aid}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture
def course_dir(tmp_path):
    """A course directory with a1 released (course/a1/a1.ipynb: the source notebook with its solution cut, as an
    earlier release left it; nbgrader runs only where a test needs it, about 10 s a run on a loaded 2-core machine)."""
    write_source(tmp_path, "a1", "# Question 1\nWhat is the answer?")
    nb = nbformat.read(tmp_path / "solutions" / "a1" / "a1.ipynb", as_version=4)
    nb.cells[1].source = "def answer():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    (tmp_path / "course" / "a1").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "course" / "a1" / "a1.ipynb")
    return tmp_path


def test_first_sync_copies_every_assignment_byte_for_byte(tmp_path, capsys):
    shutil.copytree(REPO / "course", tmp_path / "course")
    (tmp_path / "course" / "00_foundations" / ".ipynb_checkpoints").mkdir()  # someone opened course/ directly
    (tmp_path / "course" / "00_foundations" / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("{}")
    ids = sorted(p.name for p in (REPO / "course").iterdir() if p.is_dir())
    started = time.perf_counter()
    added = sync_workspace(tmp_path)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n  workspace: first sync of {len(ids)} assignments in {seconds * 1000:.1f} ms")
    assert added == ids
    assert snapshot(tmp_path / "workspace") == snapshot(REPO / "course")  # no checkpoint copied, nothing else
    started = time.perf_counter()
    assert sync_workspace(tmp_path) == []
    with capsys.disabled():
        print(f"  workspace: sync with nothing to add in {(time.perf_counter() - started) * 1000:.2f} ms")


def test_student_work_survives_a_sync_and_make_release(course_dir, monkeypatch):
    assert sync_workspace(course_dir) == ["a1"]
    mine = course_dir / "workspace" / "a1"
    nb = nbformat.read(mine / "a1.ipynb", as_version=4)
    assert "raise NotImplementedError" in nb.cells[1].source
    nb.cells[1].source = "def answer():\n    return 6 * 7  # my answer"
    nbformat.write(nb, mine / "a1.ipynb")
    (mine / "notes.md").write_text("what I tried")
    (mine / "runs").mkdir()
    (mine / "runs" / "log.txt").write_text("run 1")
    before = snapshot(course_dir / "workspace")

    assert sync_workspace(course_dir) == []
    assert snapshot(course_dir / "workspace") == before

    # an update of a1, released for real: what `make release` runs (generate_assignment --force into course/)
    monkeypatch.delenv("XAI_LAB_DB_URL", raising=False)  # the scratch course's own gradebook, never a shared one
    shutil.copy(REPO / "nbgrader_config.py", course_dir)
    write_source(course_dir, "a1", "# Question 1, reworded\nWhat is the answer, and why?")
    release(course_dir, ["a1"])
    assert "reworded" in (course_dir / "course" / "a1" / "a1.ipynb").read_text()
    assert sync_workspace(course_dir) == []
    assert snapshot(course_dir / "workspace") == before


def test_an_assignment_released_later_is_added(course_dir):
    sync_workspace(course_dir)
    (course_dir / "workspace" / "a1" / "a1.ipynb").write_text("my own notebook")
    shutil.copytree(course_dir / "course" / "a1", course_dir / "course" / "a2")  # released, or pulled, later
    assert sync_workspace(course_dir) == ["a2"]
    assert snapshot(course_dir / "workspace" / "a2") == snapshot(course_dir / "course" / "a2")
    assert (course_dir / "workspace" / "a1" / "a1.ipynb").read_text() == "my own notebook"


def test_an_interrupted_copy_is_redone(tmp_path):
    (tmp_path / "course" / "a1").mkdir(parents=True)
    (tmp_path / "course" / "a1" / "a1.ipynb").write_text("release")
    (tmp_path / "workspace" / ".a1.partial").mkdir(parents=True)  # a copy killed half-way
    assert sync_workspace(tmp_path) == ["a1"]
    assert snapshot(tmp_path / "workspace") == {"a1/a1.ipynb": b"release"}


def test_another_workspace_folder(tmp_path):
    (tmp_path / "course" / "a1").mkdir(parents=True)
    (tmp_path / "course" / "a1" / "a1.ipynb").write_text("release")
    assert sync_workspace(tmp_path, tmp_path / "mine") == ["a1"]
    assert (tmp_path / "mine" / "a1" / "a1.ipynb").read_text() == "release"
    assert not (tmp_path / "workspace").exists()


def test_a_missing_course_or_a_file_in_the_way_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"course is not a folder.*make release"):
        sync_workspace(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli.main(["workspace", "--root", str(tmp_path)])
    assert stop.value.code == 2
    assert f"{tmp_path / 'course'} is not a folder" in capsys.readouterr().err
    (tmp_path / "course").mkdir()
    (tmp_path / "workspace").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="workspace .* is not a folder"):
        sync_workspace(tmp_path)


def test_the_command_says_what_it_added(tmp_path, capsys):
    (tmp_path / "course" / "a1").mkdir(parents=True)
    (tmp_path / "course" / "a1" / "a1.ipynb").write_text("release")
    assert cli.main(["workspace", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"workspace: added a1 -> {tmp_path / 'workspace' / 'a1'}"
    assert cli.main(["workspace", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"workspace: {tmp_path / 'workspace'} is up to date"


def test_the_workspace_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "workspace/00_foundations/00_foundations.ipynb"],
                             cwd=REPO, capture_output=True)
    assert ignored.returncode == 0, "workspace/ is not in .gitignore: a student's answers would be committed"
