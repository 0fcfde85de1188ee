"""Instructor tooling around nbgrader: release, reference outputs, demo submissions, autograding.

    python -m xai_lab.course release       # course/ from solutions/ (nbgrader generate_assignment)
    python -m xai_lab.course references    # hidden reference outputs from the solution notebooks
    python -m xai_lab.course autograde     # grade everything in submitted/ and print a table
    python -m xai_lab.course feedback      # feedback/ HTML files for every graded submission
    python -m xai_lab.course demo          # three demo submissions per assignment, graded

Every command works on a course directory (``--root``, default: the repository), laid out as
``nbgrader_config.py`` says: ``solutions/`` (source), ``course/`` (release), ``submitted/``,
``autograded/``, ``feedback/`` and ``gradebook.db``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

REPO = Path(__file__).resolve().parents[1]
SOLUTION_RE = re.compile(r"^(\s*)### BEGIN SOLUTION\s*\n(.*?)^\s*### END SOLUTION\s*\n?", re.S | re.M)

# One realistic bug per assignment for the demo's "broken" submission: (answer cell, new body).
DEMO_BUGS = {
    "00_foundations": ("per_class_accuracy",
                       "# bug: the overall accuracy for every class\n"
                       "return (pred == labels).float().mean().repeat(num_classes)"),
    "01_interpretation": ("dataset_iou",
                          "# bug: the mean of per-image IoUs, not sums over the probe set\n"
                          "m, c = masks.flatten(2).float(), concepts.flatten(2).float()   # (N, K, P), (N, C, P)\n"
                          "inter = m @ c.transpose(1, 2)                                  # (N, K, C)\n"
                          "union = m.sum(2)[:, :, None] + c.sum(2)[:, None] - inter\n"
                          "return (inter / union.clamp(min=1)).mean(0)"),
    "02_explanation": ("lime_kernel",
                       "# bug: the kernel without its square root\n"
                       "z = z.float()\n"
                       "dist = 1 - z.sum(1) / (z.sum(1).sqrt() * math.sqrt(z.shape[1])).clamp(min=1e-12)\n"
                       "return torch.exp(-dist ** 2 / kernel_width ** 2)"),
}


# ------------------------------------------------------------------------------------------------
# assignments and nbgrader
# ------------------------------------------------------------------------------------------------
def assignments(root: Path = REPO) -> list[str]:
    """Assignment ids: the folders of ``solutions/`` that hold a notebook."""
    return sorted(p.name for p in (Path(root) / "solutions").iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")))


def notebook_path(root: Path, folder: str, assignment: str) -> Path:
    return Path(root) / folder / assignment / f"{assignment}.ipynb"


def nbgrader(root: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in the course directory ``root`` (its nbgrader_config.py applies)."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    run_env = {**os.environ, **(env or {})}
    run_env.setdefault("XAI_LAB_REFERENCES", str(REPO / "references"))
    # nbgrader runs `alembic` and kernels from PATH: put this interpreter's scripts first
    run_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), run_env.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=root, env=run_env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scratch_course(dest: Path, source: Path = REPO) -> Path:
    """A fresh course directory at ``dest`` (config and solutions of ``source``), released: for
    trying the pipeline without touching the real gradebook."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(source) / "nbgrader_config.py", dest)
    shutil.copytree(Path(source) / "solutions", dest / "solutions")
    release(dest)
    return dest


def release(root: Path = REPO, ids: list[str] | None = None) -> None:
    """Regenerate ``course/<id>`` from ``solutions/<id>`` (and register the assignment in the gradebook)."""
    for aid in ids or assignments(root):
        nbgrader(root, "generate_assignment", aid, "--force")
        print(f"released {aid} -> course/{aid}")


# ------------------------------------------------------------------------------------------------
# reference outputs
# ------------------------------------------------------------------------------------------------
def references(root: Path = REPO, ids: list[str] | None = None, timeout: int = 600) -> None:
    """Execute each solution notebook in record mode: ``grading.check`` stores its values."""
    import torch
    from nbclient import NotebookClient

    from .grading import RECORD_ENV, references_dir

    old = os.environ.get(RECORD_ENV)
    os.environ[RECORD_ENV] = "1"
    try:
        for aid in ids or assignments(root):
            target = references_dir() / f"{aid}.pt"
            target.unlink(missing_ok=True)
            path = notebook_path(root, "solutions", aid)
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            keys = sorted(torch.load(target, weights_only=True)) if target.exists() else []
            print(f"{aid}: {len(keys)} reference outputs -> {target}")
    finally:
        if old is None:
            os.environ.pop(RECORD_ENV, None)
        else:
            os.environ[RECORD_ENV] = old


# ------------------------------------------------------------------------------------------------
# submissions
# ------------------------------------------------------------------------------------------------
def _solution_bodies(source_nb) -> dict[str, str]:
    """Answer cells of the source notebook with the solution kept and its markers removed."""
    out = {}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            out[meta["grade_id"]] = SOLUTION_RE.sub(lambda m: m.group(2), cell.source)
    return out


def _replace_solution(source: str, body: str) -> str:
    """The source cell with its solution region replaced by ``body`` (indented like the region)."""
    def sub(m):
        indent = m.group(1)
        return "".join(indent + line + "\n" for line in body.splitlines())
    new, n = SOLUTION_RE.subn(sub, source, count=1)
    if n != 1:
        raise ValueError("answer cell has no '### BEGIN SOLUTION' region")
    return new


def make_submission(root: Path, assignment: str, student: str, kind: str = "solution",
                    replace: dict[str, str] | None = None) -> Path:
    """Write ``submitted/<student>/<assignment>/<assignment>.ipynb`` built from the release notebook.

    ``kind="solution"`` fills every answer cell with the reference solution (a perfect student);
    ``kind="blank"`` submits the release notebook untouched. ``replace`` maps answer cells
    (grade ids) to code that replaces their solution region: a bug, an endless loop, a warning.
    """
    root = Path(root)
    release_nb = nbformat.read(notebook_path(root, "course", assignment), as_version=4)
    source_nb = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    solved = _solution_bodies(source_nb)
    source_cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in source_nb.cells}
    unknown = set(replace or {}) - set(solved)
    if unknown:
        raise ValueError(f"replace names no answer cell of {assignment}: {sorted(unknown)}")
    if kind not in ("solution", "blank"):
        raise ValueError(f"kind must be 'solution' or 'blank', got {kind!r}")
    for cell in release_nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in (replace or {}):
            cell.source = _replace_solution(source_cells[gid], replace[gid])
        elif kind == "solution" and gid in solved:
            cell.source = solved[gid]
    dest = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(release_nb, dest)
    return dest


# ------------------------------------------------------------------------------------------------
# grading
# ------------------------------------------------------------------------------------------------
class ShortTracebacks(Preprocessor):
    """Feedback: an error shows as 'Name: message' only. A full IPython traceback quotes the lines
    around the failing one, which in a test cell can be hidden test code."""

    enabled = Bool(True).tag(config=True)  # nbconvert preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources


def _ensure_in_gradebook(root: Path, assignment: str) -> None:
    """Autograde needs the assignment's cells in the gradebook: register it if this gradebook lacks it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        try:
            gb.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    with tempfile.TemporaryDirectory() as tmp:  # generate into a throwaway release folder
        nbgrader(root, "generate_assignment", assignment, "--force",
                 f"--CourseDirectory.release_directory={tmp}")


def autograde(root: Path = REPO, ids: list[str] | None = None, timeout: int | None = None,
              show: bool = True) -> dict:
    """Autograde all submissions of each assignment in one nbgrader run; return (and print) the scores."""
    root = Path(root)
    submitted = root / "submitted"
    tables = {}
    for aid in ids or assignments(root):
        if not any(submitted.glob(f"*/{aid}/*.ipynb")):
            continue
        _ensure_in_gradebook(root, aid)
        extra = [f"--Execute.timeout={timeout}"] if timeout else []
        nbgrader(root, "autograde", aid, "--force", *extra)
        tables[aid] = scores(root, aid)
        if show:
            print(format_table(aid, tables[aid], _manual(root, aid)))
    if not tables and show:
        print(f"no submissions found in {submitted}")
    return tables


def graded_cells(root: Path, assignment: str) -> dict[str, bool]:
    """``{grade id: manually graded?}`` for the graded cells (tests and tasks), in notebook order."""
    nb = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    metas = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: bool(m.get("task") or m.get("solution")) for m in metas
            if m.get("grade") or m.get("task")}


def _manual(root, assignment) -> set:
    return {g for g, manual in graded_cells(root, assignment).items() if manual}


def scores(root: Path, assignment: str) -> dict:
    """``{student: {grade_id: (score, max)}}`` from the gradebook; score is None for a manually
    graded cell nobody has graded yet."""
    from nbgrader.api import Gradebook

    order = graded_cells(root, assignment)
    out = {}
    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
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


def feedback(root: Path = REPO, ids: list[str] | None = None) -> None:
    for aid in ids or assignments(root):
        if any((Path(root) / "autograded").glob(f"*/{aid}")):
            nbgrader(root, "generate_feedback", aid, "--force")
            print(f"feedback for {aid} -> feedback/<student>/{aid}/")


def demo(root: Path = REPO, ids: list[str] | None = None) -> dict:
    """Three demo submissions per assignment (solution, untouched, one bug), autograded in one run."""
    ids = ids or assignments(root)
    for aid in ids:
        make_submission(root, aid, "demo-solution", "solution")
        make_submission(root, aid, "demo-blank", "blank")
        bug = DEMO_BUGS.get(aid)
        make_submission(root, aid, "demo-broken", "solution", replace=dict([bug]) if bug else None)
    return autograde(root, ids)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xai_lab.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["release", "references", "autograde", "feedback", "demo", "table"])
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: all in solutions/)")
    parser.add_argument("--root", type=Path, default=REPO, help="course directory (default: the repository)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout when autograding (s)")
    args = parser.parse_args(argv)
    ids = args.assignments or None
    if args.command == "release":
        release(args.root, ids)
    elif args.command == "references":
        references(args.root, ids)
    elif args.command == "autograde":
        autograde(args.root, ids, timeout=args.timeout)
    elif args.command == "feedback":
        feedback(args.root, ids)
    elif args.command == "demo":
        demo(args.root, ids)
    elif args.command == "table":
        for aid in ids or assignments(args.root):
            print(format_table(aid, scores(args.root, aid), _manual(args.root, aid)))


if __name__ == "__main__":
    main()
