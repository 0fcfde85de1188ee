"""The score table, and feedback (with hidden tests and tracebacks removed)."""
from __future__ import annotations

from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from .layout import REPO, assignments, graded_cells, manual_cells
from .nbgrader_tools import gradebook_url, nbgrader


class ShortTracebacks(Preprocessor):
    """Feedback: an error shows as 'Name: message' only. A full IPython traceback quotes the lines
    around the failing one, which in a test cell can be hidden test code."""

    enabled = Bool(True).tag(config=True)  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources


def scores(root: Path, assignment: str) -> dict:
    """``{student: {grade_id: (score, max)}}`` from the gradebook; score is None for a manually
    graded cell nobody has graded yet."""
    from nbgrader.api import Gradebook

    order = graded_cells(root, assignment)
    out = {}
    with Gradebook(gradebook_url(root)) as gb:
        for sub in gb.assignment_submissions(assignment):
            cells = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    graded = grade.auto_score is not None or grade.manual_score is not None
                    cells[grade.name] = (grade.score if graded else None, grade.max_score)
            out[sub.student.id] = {g: cells[g] for g in order if g in cells}
    return dict(sorted(out.items()))


def format_table(assignment: str, table: dict, manual=()) -> str:
    """Scores as text: one row per student, one column per graded cell; '·' = not graded yet.
    The total counts the autograded cells (not those in ``manual``)."""
    if not table:
        return f"{assignment}: no submissions"
    cols = list(next(iter(table.values())))
    short = [c.removeprefix("test_").removeprefix("q_")[:14] for c in cols]
    width = max(8, max(len(s) for s in table)) + 1
    lines = [f"{assignment}: autograded points per exercise (· = manually graded, not graded yet)",
             "student".ljust(width) + " ".join(s.rjust(max(5, len(s))) for s in short) + "   auto total"]
    for student, cells in table.items():
        vals, got, most = [], 0.0, 0.0
        for c, s in zip(cols, short):
            score, mx = cells.get(c, (None, 0))
            vals.append(("·" if score is None else f"{score:g}/{mx:g}").rjust(max(5, len(s))))
            if c not in manual:
                got += score or 0.0
                most += mx
        lines.append(student.ljust(width) + " ".join(vals) + f"   {got:g}/{most:g}")
    return "\n".join(lines)


def show_scores(root: Path = REPO, ids: list[str] | None = None) -> None:
    """Print the score table of each assignment from the gradebook, without grading anything."""
    for aid in ids or assignments(root):
        print(format_table(aid, scores(root, aid), manual_cells(root, aid)))


def feedback(root: Path = REPO, ids: list[str] | None = None) -> None:
    """``feedback/<student>/<id>/*.html`` for every autograded submission (hidden tests removed)."""
    for aid in ids or assignments(root):
        if any((Path(root) / "autograded").glob(f"*/{aid}")):
            nbgrader(root, "generate_feedback", aid, "--force")
            print(f"feedback for {aid} -> feedback/<student>/{aid}/")
