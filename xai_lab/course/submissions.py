"""Submissions built from the release notebook: a perfect one, an untouched one, one with a bug;
and the demo that grades three of them per assignment."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .autograde import autograde
from .layout import REPO, assignments, notebook_path

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
    "03_evaluation": ("spearman",
                      "# bug: tied values get distinct ranks (argsort of argsort), not their average\n"
                      "ra = a.flatten(1).argsort(1).argsort(1).double()\n"
                      "rb = b.flatten(1).argsort(1).argsort(1).double()\n"
                      "ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)\n"
                      "return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))).float()"),
    "04_interpretable_by_design": ("cluster_separation",
                                   "# bug: Clst takes the closest prototype of any class (the class condition forgotten)\n"
                                   "own = prototype_classes[None, :] == labels[:, None]\n"
                                   "sep = torch.where(own, torch.full_like(min_distances, float('inf')), min_distances)\n"
                                   "return min_distances.amin(1).mean(), sep.amin(1).mean()"),
}


def _cell_sources(nb) -> dict[str, str]:
    """``{grade id: source}`` of the cells of a notebook that have a grade id."""
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}


def _solution_bodies(source_nb) -> dict[str, str]:
    """Answer cells of the source notebook with the solution kept and its markers removed; a
    written answer (a markdown answer cell) gets its model answer, as a student who answered."""
    out = {}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            out[meta["grade_id"]] = SOLUTION_RE.sub(lambda m: m.group(2), cell.source)
        elif meta.get("solution") and cell.cell_type == "markdown":
            out[meta["grade_id"]] = cell.source
    return out


def solution_body(root: Path, assignment: str, grade_id: str) -> str:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of an answer cell of
    ``solutions/``, unindented: what ``make_submission(replace={grade_id: ...})`` takes (so
    ``replace={gid: solution_body(root, aid, gid)}`` reproduces the solution)."""
    nb = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    source = _cell_sources(nb).get(grade_id)
    m = SOLUTION_RE.search(source or "")
    if m is None:
        raise ValueError(f"{assignment} has no answer cell {grade_id!r} with a '### BEGIN SOLUTION' region")
    indent = m.group(1)
    return "\n".join(line[len(indent):] for line in m.group(2).splitlines())


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
    source_cells = _cell_sources(source_nb)
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


def demo(root: Path = REPO, ids: list[str] | None = None, jobs: int = 1) -> dict:
    """Three demo submissions per assignment (solution, untouched, one bug), autograded in one run."""
    ids = ids or assignments(root)
    for aid in ids:
        make_submission(root, aid, "demo-solution", "solution")
        make_submission(root, aid, "demo-blank", "blank")
        bug = DEMO_BUGS.get(aid)
        make_submission(root, aid, "demo-broken", "solution", replace=dict([bug]) if bug else None)
    return autograde(root, ids, jobs=jobs)
