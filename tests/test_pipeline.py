"""The grading pipeline end to end, in a scratch course directory: one autograde run per assignment
grading every submission below in parallel (2 jobs), through the sandbox, the judge and nbgrader.

Honest submissions per assignment: the solution (full marks), the untouched student version (0),
one with a realistic bug in one exercise and a warning-emitting correct answer in another (loses
only the broken exercise). The mechanisms that do not depend on the assignment are tested once, on
00_foundations (the cheapest notebook): an answer that loops forever (stopped at the cell timeout,
the kernel restarted, the rest graded), the attack suite of ``tests/attacks.py`` (expected score of
each), a renamed and an unreadable notebook, and the solution three times over (the same grade each
time; one of the three is the renamed notebook). Feedback is generated without hidden tests.
"""
import hashlib
import os
from pathlib import Path

import nbformat
import pytest

import attacks
from xai_lab import course
from xai_lab.course.sandbox import Sandbox

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
LIMITS = Sandbox(cell_timeout=30)  # per cell, seconds; the command's default is 60

# per assignment: (broken exercise, its bug), (exercise answered correctly but with warnings); on 00_foundations
# also the exercise that loops
CASES = {
    "00_foundations": dict(
        broken=("per_class_accuracy", course.DEMO_BUGS["00_foundations"][1]),
        warns="watermark_effect",
        loops="top_k_images",
    ),
    "01_interpretation": dict(
        broken=("dataset_iou", course.DEMO_BUGS["01_interpretation"][1]),
        warns="filter_energies",
    ),
    "02_explanation": dict(
        broken=("lime_kernel", course.DEMO_BUGS["02_explanation"][1]),
        warns="cam",
    ),
    "03_evaluation": dict(
        broken=("spearman", course.DEMO_BUGS["03_evaluation"][1]),
        warns="pointing_game",
    ),
    "04_interpretable_by_design": dict(
        broken=("cluster_separation", course.DEMO_BUGS["04_interpretable_by_design"][1]),
        warns="low_pass",
    ),
}

# while working on one assignment: XAI_LAB_ASSIGNMENTS=02_explanation pytest tests/test_pipeline.py
_ONLY = [a for a in os.environ.get("XAI_LAB_ASSIGNMENTS", "").split(",") if a]
if _ONLY:
    CASES = {a: c for a, c in CASES.items() if a in _ONLY}
ATTACKED = "00_foundations"
COPIES = ("solution", "solution-again", "renamed")  # the renamed notebook is the solution too


def test_every_assignment_has_pipeline_cases():
    assert _ONLY or set(CASES) == set(course.assignments()), "add the new assignment to CASES"


WARN = '''import warnings
warnings.warn("a harmless warning from the student's code", UserWarning)
_ = torch.tensor(torch.tensor([1.0]))  # PyTorch's own UserWarning (copy construction)
'''
LOOP = "while True:\n    pass"


def _submit_attack(root, aid, name, base, how, edit):
    """Write the attack's notebook: ``edit`` changes cells of the notebook (``how="nb"``) or also
    names answer bodies to put in place (``"replace"``, ``"body"``: then the cells it added are
    carried over into the rebuilt notebook)."""
    path = course.make_submission(root, aid, name, base)
    nb = nbformat.read(path, as_version=4)
    if how == "nb":
        edit(nb)
        nbformat.write(nb, path)
        return
    replace = {}
    edit(nb, replace) if how == "replace" else edit(nb, replace, lambda gid: course.solution_body(REPO, aid, gid))
    fresh = nbformat.read(course.make_submission(root, aid, name, base, replace=replace), as_version=4)
    added = [c for c in nb.cells if c.id not in {f.id for f in fresh.cells}]
    i = next(i for i, c in enumerate(fresh.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    fresh.cells[i + 1:i + 1] = added
    nbformat.write(fresh, path)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = course.scratch_course(tmp_path_factory.mktemp("course"))
    for aid, case in CASES.items():
        course.make_submission(root, aid, "solution", "solution")
        course.make_submission(root, aid, "blank", "blank")
        gid, bug = case["broken"]
        course.make_submission(root, aid, "broken", "solution", replace={
            gid: bug, case["warns"]: WARN + course.solution_body(REPO, aid, case["warns"])})
        if "loops" in case:
            course.make_submission(root, aid, "loops", "solution", replace={case["loops"]: LOOP})
    if ATTACKED in CASES:
        for name, (base, how, edit, _) in attacks.ATTACKS_00.items():
            _submit_attack(root, ATTACKED, name, base, how, edit)
        course.make_submission(root, ATTACKED, "solution-again", "solution")
        renamed = course.make_submission(root, ATTACKED, "renamed", "solution")
        renamed.rename(renamed.with_name("my work (final).ipynb"))
        garbage = course.make_submission(root, ATTACKED, "unreadable", "solution")
        garbage.write_text("{ this is not a notebook")
    references = {p.name: _digest(p) for p in (REPO / "references").glob("*.pt")}
    tables = course.autograde(root, list(CASES), jobs=2, limits=LIMITS, show=False)
    course.feedback(root, list(CASES))
    return root, tables, references


def _auto(root, aid):
    manual = course.manual_cells(root, aid)
    return [g for g in course.graded_cells(root, aid) if g not in manual], manual


@pytest.mark.parametrize("aid", list(CASES))
def test_solution_scores_full_marks(graded, aid):
    root, tables, _ = graded
    auto, manual = _auto(root, aid)
    row = tables[aid]["solution"]
    assert all(row[g][0] == row[g][1] > 0 for g in auto), row
    assert all(row[g][0] is None for g in manual), "manual questions wait for a person"


@pytest.mark.parametrize("aid", list(CASES))
def test_blank_scores_zero(graded, aid):
    root, tables, _ = graded
    auto, _ = _auto(root, aid)
    assert all(tables[aid]["blank"][g][0] == 0 for g in auto), tables[aid]["blank"]


@pytest.mark.parametrize("aid", list(CASES))
def test_broken_exercise_loses_only_its_points_and_warnings_cost_nothing(graded, aid):
    root, tables, _ = graded
    auto, _ = _auto(root, aid)
    broken = "test_" + CASES[aid]["broken"][0]
    row = tables[aid]["broken"]
    assert row[broken][0] == 0
    assert all(row[g][0] == row[g][1] for g in auto if g != broken), row


@pytest.mark.parametrize("aid", [a for a, case in CASES.items() if "loops" in case])
def test_endless_loop_is_stopped_and_the_rest_graded(graded, aid):
    root, tables, _ = graded
    auto, _ = _auto(root, aid)
    looping = "test_" + CASES[aid]["loops"]
    row = tables[aid]["loops"]
    assert row[looping][0] == 0
    assert all(row[g][0] == row[g][1] for g in auto if g != looping), row
    text = (root / "autograded" / "loops" / aid / f"{aid}.ipynb").read_text()
    assert "CellTimeout" in text


@pytest.mark.parametrize("name", list(attacks.ATTACKS_00))
def test_attack_scores_what_it_earned(graded, name):
    if ATTACKED not in CASES:
        pytest.skip("attacks run on 00_foundations")
    root, tables, _ = graded
    auto, _ = _auto(root, ATTACKED)
    lost = attacks.ATTACKS_00[name][3]
    lost = set(auto) if lost == "all" else {"test_" + g for g in lost}
    row = tables[ATTACKED][name]
    got = {g: row[g][0] for g in auto}
    expected = {g: 0 if g in lost else row[g][1] for g in auto}
    assert got == expected, f"{name}: scored {got}, expected {expected}"


def test_references_and_gradebook_survive_the_attacks(graded):
    if ATTACKED not in CASES:
        pytest.skip("the attacks, copies and broken files are submitted to 00_foundations")
    root, tables, references = graded
    assert references == {p.name: _digest(p) for p in (REPO / "references").glob("*.pt")}
    assert (root / "gradebook.db").exists()
    assert set(tables[ATTACKED]) >= {"solution", *attacks.ATTACKS_00}, "every student is in the gradebook"


def test_the_same_submission_gets_the_same_grade(graded):
    if ATTACKED not in CASES:
        pytest.skip("the attacks, copies and broken files are submitted to 00_foundations")
    _, tables, _ = graded
    rows = [tables[ATTACKED][s] for s in COPIES]
    assert rows[0] == rows[1] == rows[2]


def test_renamed_and_unreadable_notebooks_are_graded_and_reported(graded):
    if ATTACKED not in CASES:
        pytest.skip("the attacks, copies and broken files are submitted to 00_foundations")
    root, tables, _ = graded
    auto, _ = _auto(root, ATTACKED)
    assert all(tables[ATTACKED]["renamed"][g][0] == tables[ATTACKED]["renamed"][g][1] for g in auto)
    assert all(tables[ATTACKED]["unreadable"][g][0] == 0 for g in auto)
    report = (root / "autograded" / f"{ATTACKED}-report.json").read_text()
    assert "renamed" in report and "not a readable notebook" in report
    assert "was deleted: it was put back" in report and "was changed: the original was graded" in report


@pytest.mark.parametrize("aid", list(CASES))
def test_feedback_hides_the_hidden_tests(graded, aid):
    root, _, _ = graded
    html = (root / "feedback" / "broken" / aid / f"{aid}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in html and "grading.check(" not in html
    assert "Score" in html or "score" in html


def test_table_prints_every_student(graded):
    root, tables, _ = graded
    for aid, table in tables.items():
        text = course.format_table(aid, table, course.manual_cells(root, aid))
        assert all(s in text for s in ("solution", "blank", "broken", *(["loops"] if "loops" in CASES[aid] else [])))
