"""course/ is generated from solutions/: in sync, and free of solutions, hidden tests and outputs."""
import ast
import builtins
import json
import re
from pathlib import Path

import nbformat
import pytest
import torch

from cell_names import cell_names
from xai_lab import course, grading

REPO = Path(__file__).resolve().parents[1]
IDS = course.assignments(REPO)
# the issues' minimums: (autograded exercises, manually graded questions)
MINIMUM = {"00_foundations": (5, 1), "01_interpretation": (6, 2), "02_explanation": (8, 2), "03_evaluation": (7, 2),
           "04_interpretable_by_design": (5, 2)}


def test_every_assignment_is_released():
    assert IDS, "no assignment in solutions/"
    assert sorted(p.name for p in (REPO / "course").iterdir() if p.is_dir()) == IDS


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The release regenerated from solutions/ in a scratch course directory."""
    return course.scratch_course(tmp_path_factory.mktemp("course"))


@pytest.mark.parametrize("aid", IDS)
def test_course_is_in_sync_with_solutions(regenerated, aid):
    committed = sorted(p.relative_to(REPO / "course") for p in (REPO / "course" / aid).rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(regenerated / "course") for p in (regenerated / "course" / aid).rglob("*") if p.is_file())
    assert committed == fresh
    for rel in committed:
        assert (REPO / "course" / rel).read_bytes() == (regenerated / "course" / rel).read_bytes(), \
            f"course/{rel} is stale: run `make release`"


def _solution_lines(source_nb):
    lines = set()
    for cell in source_nb.cells:
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
            lines |= {ln.strip() for ln in region.splitlines() if len(ln.strip()) > 12}
        for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, re.S):
            lines |= {ln.strip() for ln in region.splitlines() if len(ln.strip()) > 12}
        for region in re.findall(r"=== BEGIN MARK SCHEME ===\n(.*?)=== END MARK SCHEME ===", cell.source, re.S):
            lines |= {ln.strip() for ln in region.splitlines() if len(ln.strip()) > 12}
    return lines


@pytest.mark.parametrize("aid", IDS)
def test_course_leaks_nothing(aid):
    folder = REPO / "course" / aid
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert all(p.suffix == ".ipynb" for p in files), f"only notebooks are released, found {files}"
    source = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    secret = _solution_lines(source)
    # lines that the release keeps on purpose (function signatures etc.) are in non-solution text
    public = {ln.strip() for c in source.cells for ln in re.sub(
        r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END (SOLUTION|HIDDEN TESTS)|=== BEGIN MARK SCHEME ===.*?=== END MARK SCHEME ===",
        "", c.source, flags=re.S).splitlines()}
    secret -= public
    assert secret, "the source has solutions to hide"
    for nb_path in files:
        nb = nbformat.read(nb_path, as_version=4)
        text = nb_path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "MARK SCHEME", "grading.check"):
            assert marker not in text, f"{nb_path.name} contains {marker!r}"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, "outputs are stripped"
            leaked = [ln for ln in cell.source.splitlines() if ln.strip() in secret]
            assert not leaked, f"{nb_path.name}: solution or hidden-test lines leaked: {leaked[:3]}"


@pytest.mark.parametrize("aid", IDS)
def test_assignment_structure(aid):
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    metas = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    tests = [(m, c) for m, c in zip(metas, nb.cells) if m.get("grade") and not m.get("solution")]
    # a manually graded question: a locked question cell, and right after it the answer cell the student writes in
    # and the grader reads (markdown, graded, with the mark scheme in the source only); no task cells
    answers = [i for i, (m, c) in enumerate(zip(metas, nb.cells))
               if c.cell_type == "markdown" and m.get("solution") and m.get("grade")]
    auto, manual = MINIMUM.get(aid, (5, 1))
    assert len(tests) >= auto, f"at least {auto} autograded exercises"
    assert len(answers) >= manual, f"at least {manual} manually graded questions"
    assert not [m["grade_id"] for m in metas if m.get("task")], "manual questions are answer cells, not task cells"
    for i in answers:
        m, question = metas[i], nb.cells[i - 1]
        assert m.get("points", 0) > 0 and not m.get("locked"), f"{m['grade_id']}: points, and the student may write"
        assert "Mark scheme" in nb.cells[i].source, f"{m['grade_id']}: the mark scheme, for the grader"
        assert question.cell_type == "markdown" and metas[i - 1].get("locked") and not metas[i - 1].get("grade"), \
            f"{m['grade_id']}: right after its question (a locked markdown cell)"
        assert "manually graded" in question.source and f"{m['points']} point" in question.source, \
            f"{m['grade_id']}: the question says it is manually graded, and for how many points"
    released = nbformat.read(REPO / "course" / aid / f"{aid}.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in released.cells}
    for i in answers:
        gid = metas[i]["grade_id"]
        assert by_id[gid].source.strip() == "YOUR ANSWER HERE", f"{gid}: the release shows an empty answer cell"
    refs = torch.load(grading.references_dir() / f"{aid}.pt", weights_only=True)
    for m, c in tests:
        assert "### BEGIN HIDDEN TESTS" in c.source, f"{m['grade_id']}: a hidden test"
        hidden = c.source.split("### BEGIN HIDDEN TESTS")[1]
        keys = re.findall(rf'grading\.check\("{aid}", "([^"]+)"', hidden)
        assert keys, f"{m['grade_id']}: the hidden test compares with a reference"
        assert all(k in refs for k in keys), f"{m['grade_id']}: missing references {keys}; run `make references`"
        ex = f"{aid}.{m['grade_id'].removeprefix('test_')}"
        if ex in grading.REFERENCE_IMPLEMENTATIONS:
            assert "grading.forbid(" in hidden, f"{m['grade_id']}: the hidden test guards against the library"
    # hidden reference outputs never sit beside the notebooks
    assert not list((REPO / "solutions" / aid).glob("*.pt"))


@pytest.mark.parametrize("aid", IDS)
def test_a_test_cell_needs_only_locked_cells_and_its_own_answer(aid):
    """A broken exercise must cost only its own points: no test cell may read a name that only
    another exercise's answer or test cell defines (a failing cell would leave it undefined)."""
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    first = {}  # name -> grade_id of the first cell binding it ("" for a locked cell)
    problems = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        graded = meta.get("grade") or meta.get("solution")
        gid = meta.get("grade_id", "") if graded else ""
        bound, read = cell_names(cell.source)
        if meta.get("grade"):
            own = gid.removeprefix("test_")
            for name in sorted(read - bound - set(dir(builtins))):
                owner = first.get(name)
                assert owner is not None, f"{gid} reads {name!r}, which no earlier cell defines"
                if owner not in ("", own):
                    problems.append(f"{gid} reads {name!r} from {owner}")
        for name in bound:
            first.setdefault(name, gid)
    assert not problems, problems


@pytest.mark.parametrize("aid", IDS)
def test_every_hidden_test_records_its_results_for_the_grader(aid):
    """The grader judges records, not the kernel: each autograded test cell's hidden part records
    every result with literal names (so the judge can read what to expect from the source), runs
    on its own (the visible part may fail, or call a library function that is a stub while
    grading), has no bare assert (a kernel-side verdict), and has a reference for each record."""
    from xai_lab.course import judge

    refs = torch.load(REPO / "references" / f"{aid}.pt", weights_only=True)
    nb = nbformat.read(course.notebook_path(REPO, "solutions", aid), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")):
            continue
        gid = meta["grade_id"]
        expected = judge.expected_checks(cell.source)
        assert expected, f"{gid}: no grading.check(...) in its hidden part: nothing to judge it by"
        assert set(expected) <= set(refs), f"{gid}: no reference for {set(expected) - set(refs)}: make references"
        hidden = "".join(judge.HIDDEN_RE.findall(cell.source))
        visible = judge.HIDDEN_RE.sub("", cell.source)
        assert not any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(hidden))), \
            f"{gid}: a bare assert in a hidden test is decided in the kernel: record the value with grading.check"
        defined = {n.id for n in ast.walk(ast.parse(visible)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        defined |= {n.name for n in ast.walk(ast.parse(visible)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        tree = ast.parse(hidden)
        own = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        own |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert not (used & defined) - own, f"{gid}: the hidden part uses {(used & defined) - own} from the visible part"


HINT_RE = re.compile(r"<details>\s*<summary>\s*Hint\s*</summary>\s*\n(.+?)</details>", re.S)


@pytest.mark.parametrize("aid", IDS)
def test_every_exercise_has_a_hint_a_student_can_open(aid):
    """Each autograded exercise's specification (the markdown between the previous exercise's test and its answer
    cell) ends with one collapsed hint (``<details><summary>Hint</summary>``) with text in it; the release keeps it."""
    released = nbformat.read(REPO / "course" / aid / f"{aid}.ipynb", as_version=4).cells
    nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
    spec, missing = [], []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and not meta.get("grade"):
            spec.append(cell.source)
        elif cell.cell_type == "code" and meta.get("solution"):
            hints = [h for s in spec for h in HINT_RE.findall(s)]
            if len(hints) != 1 or len(hints[0].split()) < 5:
                missing.append(f"{meta['grade_id']}: {len(hints)} hints")
            spec = []
        elif meta.get("grade"):
            spec = []
    assert not missing, f"{aid}: each exercise needs one hint of a few words before its answer cell: {missing}"
    hints = [h for c in released if c.cell_type == "markdown" for h in HINT_RE.findall(c.source)]
    assert len(hints) == sum(c.metadata.get("nbgrader", {}).get("solution", False) and c.cell_type == "code"
                             for c in nb.cells), f"{aid}: the release keeps every hint"
