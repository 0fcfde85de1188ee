"""Self-check for students and self-learners: ``xai-lab check ID [NOTEBOOK ...]``.

Grades the learner's own notebook with the real pipeline (:func:`.autograde.autograde_assignment`:
the notebook rebuilt from the template, run in the sandbox, judged against the hidden references)
in a scratch course directory in a temporary folder, so the instructor's gradebook, ``submitted/``
and ``autograded/`` are never touched. Prints, per notebook, the points of each autograded exercise
and, for each exercise that lost points, what the learner needs: the visible test's message and the
judge's description of how the hidden result is off (never the hidden test code, never a reference
value), and notes such as a cell that timed out or a notebook that was repaired.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .autograde import autograde_assignment
from .grades import scores
from .layout import REPO, assignments, graded_cells, manual_cells
from .nbgrader_tools import nbgrader

__all__ = ["CheckError", "Result", "default_notebook", "check", "format_result"]

MAX_LINES = 12  # lines of feedback shown per exercise
RECORDED = ": result recorded for the grader"


class CheckError(ValueError):
    """A usage problem: an unknown assignment, a missing or unreadable notebook, no references."""


@dataclass
class Result:
    """One graded notebook: ``points`` ``{grade id: (score, max)}`` of the autograded exercises,
    ``manual`` (grade ids a person reads), ``messages`` ``{grade id: [lines]}`` for exercises that
    lost points, ``notes`` (repairs, timeouts, crashed kernels)."""

    notebook: Path
    assignment: str
    points: dict
    manual: list
    messages: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    feedback: Path | None = None

    @property
    def total(self) -> tuple[float, float]:
        return (sum(s or 0.0 for s, _ in self.points.values()), sum(m for _, m in self.points.values()))


def default_notebook(root: Path, assignment: str) -> Path:
    """The learner's working copy: ``workspace/ID/ID.ipynb`` if it exists, else ``course/ID/ID.ipynb``."""
    for folder in ("workspace", "course"):
        path = Path(root) / folder / assignment / f"{assignment}.ipynb"
        if path.is_file():
            return path
    return Path(root) / "course" / assignment / f"{assignment}.ipynb"


def _validate(root: Path, assignment: str, notebooks: list[Path]) -> None:
    from ..grading import references_dir

    known = assignments(root) if (Path(root) / "solutions").is_dir() else []
    if assignment not in known:
        raise CheckError(f"unknown assignment {assignment!r}; the assignments are: {', '.join(known) or 'none'}")
    for path in notebooks:
        if not path.is_file():
            raise CheckError(f"notebook {str(path)!r} does not exist")
        try:
            nbformat.read(path, as_version=4)
        except Exception as e:  # any parse error: not a notebook we can grade
            raise CheckError(f"notebook {str(path)!r} is not a readable notebook ({type(e).__name__}: {e})"[:400]) from e
    ref = references_dir() / f"{assignment}.pt"
    if not ref.is_file():
        raise CheckError(f"no reference outputs for {assignment!r} at {ref}: the hidden tests need them "
                         f"(an instructor runs `make references`, or set XAI_LAB_REFERENCES to their folder)")


@contextmanager
def _private_gradebook():
    """``$XAI_LAB_DB_URL`` unset while the scratch course grades: its gradebook is its own SQLite file."""
    old = os.environ.pop("XAI_LAB_DB_URL", None)
    try:
        yield
    finally:
        if old is not None:
            os.environ["XAI_LAB_DB_URL"] = old


def _scratch(root: Path, assignment: str, dest: Path) -> Path:
    """A course directory with only ``assignment``: config, its source, released (and in the gradebook)."""
    dest.mkdir(parents=True)
    shutil.copy(Path(root) / "nbgrader_config.py", dest)
    shutil.copytree(Path(root) / "solutions" / assignment, dest / "solutions" / assignment)
    nbgrader(dest, "generate_assignment", assignment, "--force")
    return dest


def _text(out) -> str:
    if out.get("output_type") == "error":
        return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
    if out.get("output_type") == "stream":
        return out.get("text", "")
    return ""


def _messages(nb, lost: set, manual: set) -> tuple[dict, dict]:
    """``({grade id: lines}, {cell index: grade id})`` from a judged notebook: for each exercise in
    ``lost``, the errors of its visible test cell and the judged output of its graded cell (the
    kernel's own lines "result recorded for the grader" left out)."""
    out, owner, pending = {}, {}, []
    for i, cell in enumerate(nb.cells):
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid is None:
            pending.append(i)
            if str(cell.get("id", "")).endswith("-visible"):
                lines = [_text(o) for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                out.setdefault(str(cell["id"]).removesuffix("-visible"), []).extend(lines)
            continue
        owner.update({j: gid for j in pending + [i]})
        pending = []
        if gid in lost and gid not in manual and cell.get("cell_type") == "code" and not \
                cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            text = "".join(_text(o) if o.get("output_type") == "stream" else _text(o) + "\n"
                           for o in cell.get("outputs", []))
            out.setdefault(gid, []).extend(line for line in text.splitlines()
                                           if line.strip() and not line.endswith(RECORDED))
    return {g: _dedupe(v) for g, v in out.items() if g in lost and v}, owner


def _plain(line: str) -> str:
    """A judged line as the learner reads it: without the judge's error name; an empty
    NotImplementedError is the release's answer stub."""
    if line.rstrip() == "NotImplementedError:":
        return "NotImplementedError: not answered yet (the answer cell still raises it)"
    return line.removeprefix("NotPassed: ")


def _dedupe(lines: list[str]) -> list[str]:
    seen, kept = set(), []
    for line in (_plain(part) for text in lines for part in text.splitlines()):
        if line not in seen:
            seen.add(line)
            kept.append(line)
    return kept[:MAX_LINES] + ([f"... ({len(kept) - MAX_LINES} more lines: see --feedback)"] if len(kept) > MAX_LINES else [])


def check(assignment: str, notebooks: list[Path] | None = None, root: Path = REPO, jobs: int = 1,
          limits=None, feedback: Path | None = None) -> list[Result]:
    """Grade each notebook (default: the learner's working copy) as its own student, in one run of
    the real pipeline in a scratch course; ``[Result]`` in the order given. ``feedback``: a folder
    for the HTML feedback of each notebook (``<n>-<name>.html``)."""
    from .sandbox import available

    root = Path(root)
    notebooks = [Path(p) for p in notebooks or [default_notebook(root, assignment)]]
    _validate(root, assignment, notebooks)
    problem = available()
    if problem:
        raise RuntimeError(f"the grading sandbox cannot run here, so nothing can be graded: {problem}")
    students = [f"learner-{i + 1}" for i in range(len(notebooks))]
    with _private_gradebook(), tempfile.TemporaryDirectory(prefix="xai-check-") as tmp:
        course = _scratch(root, assignment, Path(tmp) / "course")
        for student, path in zip(students, notebooks):
            dest = course / "submitted" / student / assignment / f"{assignment}.ipynb"
            dest.parent.mkdir(parents=True)
            shutil.copy(path, dest)
        report = autograde_assignment(course, assignment, jobs=jobs, limits=limits)
        table = scores(course, assignment)
        manual = manual_cells(course, assignment)
        order = list(graded_cells(course, assignment))
        if feedback is not None:
            nbgrader(course, "generate_feedback", assignment, "--force")
        results = []
        for n, (student, path) in enumerate(zip(students, notebooks), 1):
            row = table.get(student, {})
            points = {g: row.get(g, (0.0, 0.0)) for g in order if g not in manual}
            lost = {g for g, (s, m) in points.items() if (s or 0.0) < m}
            judged = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
            messages, owner = _messages(judged, lost, manual)
            info = report.get(student, {})
            notes = [f"{_where(e, owner)}{e['kind']}: {e['message']}" for e in info.get("events", [])]
            notes = list(info.get("notes", [])) + notes
            result = Result(path, assignment, points, [g for g in order if g in manual], messages, notes)
            if feedback is not None:
                result.feedback = _copy_feedback(course, student, assignment, Path(feedback), f"{n}-{path.stem}")
            results.append(result)
    return results


def _where(event: dict, owner: dict) -> str:
    gid = owner.get(event.get("cell"))
    return f"{_short(gid)}: " if gid else ""


def _copy_feedback(course: Path, student: str, assignment: str, folder: Path, name: str) -> Path | None:
    html = course / "feedback" / student / assignment / f"{assignment}.html"
    if not html.is_file():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(html, folder / f"{name}.html"))


def _short(gid: str) -> str:
    return gid.removeprefix("test_").removeprefix("q_")


def format_result(result: Result) -> str:
    """The self-check's report of one notebook, as text."""
    got, most = result.total
    width = max([len(_short(g)) for g in [*result.points, *result.manual]] + [8]) + 2
    lines = [f"{result.assignment}: {result.notebook}", f"  {'exercise'.ljust(width)}points"]
    for gid, (score, mx) in result.points.items():
        mark = "" if (score or 0.0) >= mx else "   <- see below"
        lines.append(f"  {_short(gid).ljust(width)}{score or 0:g}/{mx:g}{mark}")
    for gid in result.manual:
        lines.append(f"  {_short(gid).ljust(width)}not graded (a person reads them)")
    lines.append(f"  {'total'.ljust(width)}{got:g}/{most:g} (autograded)")
    for gid in result.points:
        if gid in result.messages:
            lines.append(f"{_short(gid)}:")
            lines.extend(f"    {line}" for line in result.messages[gid])
    if result.notes:
        lines.append("notes:")
        lines.extend(f"    {note}" for note in result.notes)
    if result.feedback is not None:
        lines.append(f"feedback: {result.feedback}")
    return "\n".join(lines)
