"""The course directory and its notebooks: where things are, which cells are graded.

A course directory (the repository by default) is laid out as ``nbgrader_config.py`` says:
``solutions/<id>/<id>.ipynb`` (nbgrader source), ``course/<id>/<id>.ipynb`` (release),
``submitted/``, ``autograded/``, ``feedback/`` and ``gradebook.db``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]


def assignments(root: Path = REPO) -> list[str]:
    """Assignment ids: the folders of ``solutions/`` that hold a notebook."""
    return sorted(p.name for p in (Path(root) / "solutions").iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")))


def notebook_path(root: Path, folder: str, assignment: str) -> Path:
    return Path(root) / folder / assignment / f"{assignment}.ipynb"


def graded_cells(root: Path, assignment: str) -> dict[str, bool]:
    """``{grade id: manually graded?}`` for the graded cells (tests and tasks), in notebook order."""
    nb = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    metas = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: bool(m.get("task") or m.get("solution")) for m in metas
            if m.get("grade") or m.get("task")}


def manual_cells(root: Path, assignment: str) -> set[str]:
    """Grade ids of the manually graded cells (tasks and graded answers) of an assignment."""
    return {g for g, manual in graded_cells(root, assignment).items() if manual}
