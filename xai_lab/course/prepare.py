"""What gets executed for a submission: the instructor's notebook with the student's answers in it.

A submitted notebook is untrusted in its *structure* too: a cell's metadata may be damaged, a test
cell deleted or edited, a grade id duplicated, the file renamed or not a notebook at all. nbgrader
trusts that structure (a duplicated id aborts a whole run, a damaged cell scores 0). Here the
notebook that runs is rebuilt from the instructor's *template* (the release notebook, with the
hidden tests of each test cell from the gradebook) and the student contributes only:

- the source of each answer cell, found by its grade id, else by its cell id (nbformat 4.5), and of
  each cell that is not locked (a written answer to a question, for example);
- the cells the student added (their own helpers), kept in place after the cell they followed.

Everything else (instructions, set-up and test cells, their metadata) comes from the template, so
a deleted test cell is back, an edited one is the original again, and every change is reported
to the instructor in the notes.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from .judge import HIDDEN_RE

__all__ = ["template", "find_notebook", "read_submission", "merge"]


def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _is_answer(cell) -> bool:
    return bool(_meta(cell).get("solution"))


def template(release_nb, gradebook_sources: dict):
    """The notebook the grader runs: the release notebook, with each autograded test cell split in
    two: its visible part (an ungraded cell: its assertions teach, their failure costs nothing by
    itself, and a library function it compares with may be unavailable while grading), then the
    graded cell with the hidden part from the gradebook, which records the student's results
    whatever happened in the visible part. ``gradebook_sources``: ``{grade_id: source}``."""
    nb = copy.deepcopy(release_nb)
    cells = []
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            source = gradebook_sources[meta["grade_id"]]
            hidden = "".join(HIDDEN_RE.findall(source))
            visible = HIDDEN_RE.sub("", source).strip()
            if visible:
                cells.append(nbformat.v4.new_code_cell(visible, id=f"{meta['grade_id']}-visible"))
            cell.source = hidden or source
        cells.append(cell)
    nb.cells = cells
    return nb


def find_notebook(folder: Path, assignment: str) -> tuple[Path | None, list[str]]:
    """The submitted notebook of ``assignment`` in ``folder`` and notes: ``<assignment>.ipynb``,
    else the only notebook there (a renamed one), else None."""
    expected = folder / f"{assignment}.ipynb"
    if expected.is_file():
        return expected, []
    found = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if len(found) == 1:
        return found[0], [f"graded {found[0].name} as {expected.name} (the notebook was renamed)"]
    if not found:
        return None, [f"no notebook submitted in {folder}: graded as blank"]
    return None, [f"{len(found)} notebooks and none named {expected.name} ({', '.join(p.name for p in found)}): "
                  f"graded as blank; rename the right one and grade again"]


def read_submission(path: Path | None) -> tuple[list, list[str]]:
    """The cells of a submitted notebook, read leniently (any nbformat 4 JSON), and notes."""
    if path is None:
        return [], []
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # not JSON, not a notebook: nothing of it can be graded
        return [], [f"{path.name} is not a readable notebook ({type(e).__name__}): graded as blank"]
    cells = [c for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw")]
    return cells, []


def _match(template_nb, cells) -> tuple[dict, list, list[str]]:
    """``{template index: student index}`` for answer and locked cells, the unmatched student
    cells, and notes (duplicates, cells found only by their cell id)."""
    by_gid = {_meta(c).get("grade_id"): i for i, c in enumerate(template_nb.cells) if _meta(c).get("grade_id")}
    by_id = {c.get("id"): i for i, c in enumerate(template_nb.cells) if c.get("id")}
    matched, extra, notes = {}, [], []
    for j, cell in enumerate(cells):
        gid = _meta(cell).get("grade_id")
        i = by_gid.get(gid) if isinstance(gid, str) else None
        if i is None and isinstance(cell.get("id"), str) and cell["id"] in by_id:
            i = by_id[cell["id"]]
            if _is_answer(template_nb.cells[i]):
                notes.append(f"answer cell {cell['id']!r} had damaged metadata: found by its cell id")
        if i is None:
            extra.append(j)
        elif i in matched:
            notes.append(f"cell {_meta(template_nb.cells[i]).get('grade_id')!r} appears twice: the first one was graded")
            extra.append(j)
        else:
            matched[i] = j
    return matched, extra, notes


def merge(template_nb, cells: list, release_sources: dict) -> tuple:
    """The notebook to execute: ``template_nb`` with the student's answers and added cells.
    ``release_sources``: ``{grade_id: source}`` of the release, to report edited locked cells."""
    nb = copy.deepcopy(template_nb)
    matched, extra, notes = _match(template_nb, cells)
    after = {}  # student's extra cells, keyed by the template cell they follow (-1: the start)
    last = -1
    inverse = {j: i for i, j in matched.items()}
    for j, cell in enumerate(cells):
        if j in inverse:
            last = inverse[j]
        elif j in extra:
            after.setdefault(last, []).append(cell)
    out = [nbformat.v4.new_code_cell(c["source"]) if c.get("cell_type") == "code" else
           nbformat.v4.new_markdown_cell(c.get("source", "")) for c in after.get(-1, [])]
    for i, cell in enumerate(nb.cells):
        meta = _meta(cell)
        if i in matched:
            student = cells[matched[i]]
            source = student.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if _is_answer(cell) or not (meta.get("locked") or meta.get("grade")):
                cell.source = source  # an answer, or a free cell the student may write in
            elif source != release_sources.get(meta.get("grade_id"), source):
                notes.append(f"locked cell {meta.get('grade_id')!r} was changed: the original was graded")
        elif _is_answer(cell):
            notes.append(f"answer cell {meta.get('grade_id')!r} is missing: graded as unanswered")
        elif meta.get("grade"):
            notes.append(f"test cell {meta.get('grade_id')!r} was deleted: it was put back")
        out.append(cell)
        for added in after.get(i, []):
            src = added.get("source", "")
            src = "".join(src) if isinstance(src, list) else str(src)
            out.append(nbformat.v4.new_code_cell(src) if added.get("cell_type") == "code" else
                       nbformat.v4.new_markdown_cell(src))
    nb.cells = out
    return nb, notes
