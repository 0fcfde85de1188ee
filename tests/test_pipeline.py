"""The grading pipeline end to end, in a scratch course directory, one autograde run per assignment.

Submissions: the solution (full marks), the untouched student version (0 on autograded cells), one
with a realistic bug in one exercise and a warning-emitting (but correct) answer in another (loses
only the broken exercise), and one whose answer loops forever (stopped by the per-cell timeout,
the rest still graded). Feedback is generated without hidden tests.
"""
import os
from pathlib import Path

import pytest

from xai_lab import course

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 30  # per cell, seconds; the repository's config says 60

# per assignment: (broken exercise, its bug), (exercise answered correctly but with warnings), (exercise that loops)
CASES = {
    "00_foundations": dict(
        broken=("per_class_accuracy", course.DEMO_BUGS["00_foundations"][1]),
        warns="watermark_effect",
        loops="top_k_images",
    ),
    "01_interpretation": dict(
        broken=("dataset_iou", course.DEMO_BUGS["01_interpretation"][1]),
        warns="filter_energies",
        loops="label_units",
    ),
    "02_explanation": dict(
        broken=("lime_kernel", course.DEMO_BUGS["02_explanation"][1]),
        warns="cam",
        loops="why_not",
    ),
}

# while working on one assignment: XAI_LAB_ASSIGNMENTS=02_explanation pytest tests/test_pipeline.py
_ONLY = [a for a in os.environ.get("XAI_LAB_ASSIGNMENTS", "").split(",") if a]
if _ONLY:
    CASES = {a: c for a, c in CASES.items() if a in _ONLY}


def test_every_assignment_has_pipeline_cases():
    assert _ONLY or set(CASES) == set(course.assignments()), "add the new assignment to CASES"


WARN = '''import warnings
warnings.warn("a harmless warning from the student's code", UserWarning)
_ = torch.tensor(torch.tensor([1.0]))  # PyTorch's own UserWarning (copy construction)
'''
LOOP = "while True:\n    pass"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = course.scratch_course(tmp_path_factory.mktemp("course"))
    for aid, case in CASES.items():
        course.make_submission(root, aid, "solution", "solution")
        course.make_submission(root, aid, "blank", "blank")
        gid, bug = case["broken"]
        course.make_submission(root, aid, "broken", "solution", replace={
            gid: bug, case["warns"]: WARN + course.solution_body(REPO, aid, case["warns"])})
        course.make_submission(root, aid, "loops", "solution", replace={case["loops"]: LOOP})
    tables = course.autograde(root, list(CASES), timeout=TIMEOUT, show=False)
    course.feedback(root, list(CASES))
    return root, tables


def _auto(root, aid):
    manual = course.manual_cells(root, aid)
    return [g for g in course.graded_cells(root, aid) if g not in manual], manual


@pytest.mark.parametrize("aid", list(CASES))
def test_solution_scores_full_marks(graded, aid):
    root, tables = graded
    auto, manual = _auto(root, aid)
    row = tables[aid]["solution"]
    assert all(row[g][0] == row[g][1] > 0 for g in auto), row
    assert all(row[g][0] is None for g in manual), "manual questions wait for a person"


@pytest.mark.parametrize("aid", list(CASES))
def test_blank_scores_zero(graded, aid):
    root, tables = graded
    auto, _ = _auto(root, aid)
    assert all(tables[aid]["blank"][g][0] == 0 for g in auto), tables[aid]["blank"]


@pytest.mark.parametrize("aid", list(CASES))
def test_broken_exercise_loses_only_its_points_and_warnings_cost_nothing(graded, aid):
    root, tables = graded
    auto, _ = _auto(root, aid)
    broken = "test_" + CASES[aid]["broken"][0]
    row = tables[aid]["broken"]
    assert row[broken][0] == 0
    assert all(row[g][0] == row[g][1] for g in auto if g != broken), row


@pytest.mark.parametrize("aid", list(CASES))
def test_endless_loop_is_stopped_and_the_rest_graded(graded, aid):
    root, tables = graded
    auto, _ = _auto(root, aid)
    looping = "test_" + CASES[aid]["loops"]
    row = tables[aid]["loops"]
    assert row[looping][0] == 0
    assert all(row[g][0] == row[g][1] for g in auto if g != looping), row
    text = (root / "autograded" / "loops" / aid / f"{aid}.ipynb").read_text()
    assert "KeyboardInterrupt" in text or "CellTimeoutError" in text


@pytest.mark.parametrize("aid", list(CASES))
def test_feedback_hides_the_hidden_tests(graded, aid):
    root, _ = graded
    html = (root / "feedback" / "broken" / aid / f"{aid}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in html and "grading.forbid" not in html
    assert "Score" in html or "score" in html


def test_table_prints_every_student(graded):
    root, tables = graded
    for aid, table in tables.items():
        text = course.format_table(aid, table, course.manual_cells(root, aid))
        assert all(s in text for s in ("solution", "blank", "broken", "loops"))
