"""The grader's side of grading: plain-data records, the judge, and the rebuilt submission."""
import json

import nbformat
import pytest
import torch

from xai_lab import records
from xai_lab.course import judge, prepare


# --- records ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    torch.arange(6, dtype=torch.float32).view(2, 3), torch.tensor([True, False]), torch.tensor([1, -2], dtype=torch.int64),
    (0.5, 2, "a", None, True), [torch.zeros(0, 3)], {"x": torch.ones(2, dtype=torch.float64), "n": 3},
    float("nan"), float("-inf"),
])
def test_records_round_trip_through_json(value):
    back = records.decode(json.loads(json.dumps(records.encode(value))))
    assert judge.compare(back, value) == [] if not isinstance(value, float) else str(back) == str(value)


class Agreeable(torch.Tensor):
    """A tensor that says yes to every comparison: it must arrive as plain numbers."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("eq", "__eq__", "allclose", "isclose", "equal"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_subclass_arrives_as_its_data():
    fake = torch.zeros(3).as_subclass(Agreeable)
    back = records.decode(json.loads(json.dumps(records.encode(fake))))
    assert type(back) is torch.Tensor and back.tolist() == [0.0, 0.0, 0.0]
    assert judge.compare(back, torch.ones(3)) != []


@pytest.mark.parametrize("payload", [
    {"dtype": "object", "shape": [1], "data": ""}, {"dtype": "float32", "shape": [2], "data": "AAAA"},
    {"dtype": "float32", "shape": [-1], "data": ""}, {"__class__": "os.system"}, {"dtype": "float32", "shape": [10**9], "data": ""},
])
def test_bad_records_are_refused(payload):
    with pytest.raises(records.RecordError):
        records.decode(payload)


# --- judge -----------------------------------------------------------------------------------------
SOURCE = ('x = 1\n### BEGIN HIDDEN TESTS\n_v = f(3)\ngrading.check("99_demo", "f", _v, rtol=1e-3)\n'
          'grading.check("99_demo", "g", 2)\n### END HIDDEN TESTS\n')
REFS = {"f": torch.tensor([1.0, 2.0]), "g": 2}


def _record(exercise, value):
    return nbformat.v4.new_output("display_data", data={records.MIME: {"exercise": exercise, "value": records.encode(value)}})


def _cell(*outputs):
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = list(outputs)
    return cell


def test_expected_checks_come_from_the_source_with_their_tolerance():
    assert judge.expected_checks(SOURCE) == {"f": {"assignment": "99_demo", "rtol": 1e-3, "atol": 1e-5},
                                             "g": {"assignment": "99_demo", "rtol": 1e-4, "atol": 1e-5}}


def test_matching_records_pass_and_leave_no_error_or_stderr():
    cell = _cell(nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
                 _record("f", torch.tensor([1.0, 2.0005])), _record("g", 2))
    passed, lines = judge.judge_cell(cell, SOURCE, REFS)
    assert passed, lines
    assert not any(o.output_type == "error" or o.get("name") == "stderr" for o in cell.outputs)
    assert all(records.MIME not in o.get("data", {}) for o in cell.outputs)


@pytest.mark.parametrize("outputs, words", [
    ([], "no result was recorded"),
    ([_record("f", torch.tensor([1.0, 2.0]))], "g: no result"),
    ([_record("f", torch.tensor([1.0, 2.1])), _record("g", 2)], "differs"),
    ([_record("f", torch.tensor([1.0, 2.0])), _record("f", torch.tensor([9.0, 9.0])), _record("g", 2)], "differs"),
])
def test_missing_or_wrong_records_fail_with_an_error_output(outputs, words):
    cell = _cell(*outputs)
    passed, lines = judge.judge_cell(cell, SOURCE, REFS)
    assert not passed and words in "\n".join(lines)
    assert cell.outputs[-1].output_type == "error"


def test_kernel_side_claims_of_success_count_for_nothing():
    """Partial credit, a printed 'matches', swallowed errors: only the records decide."""
    cell = _cell(nbformat.v4.new_output("execute_result", data={"text/plain": "1e9"}),
                 nbformat.v4.new_output("stream", name="stdout", text="f: matches the reference\n"))
    passed, _ = judge.judge_cell(cell, SOURCE, REFS)
    assert not passed
    assert not any(o.output_type == "execute_result" for o in cell.outputs)


# --- prepare ---------------------------------------------------------------------------------------
def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _graded(kind, gid, source, **extra):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source, id=gid)
    cell.metadata["nbgrader"] = {"grade_id": gid, "locked": extra.get("locked", False),
                                 "solution": extra.get("solution", False), "grade": extra.get("grade", False),
                                 "points": extra.get("points", 0), "schema_version": 3}
    return cell


RELEASE = _nb(_graded("markdown", "intro", "# Intro", locked=True),
              _graded("code", "answer", "# YOUR CODE HERE", solution=True),
              _graded("code", "test_answer", "assert f(1) == 1", locked=True, grade=True, points=1))
GRADEBOOK = {"test_answer": "assert f(1) == 1\n" + SOURCE}


def test_template_splits_each_test_cell_into_visible_and_graded_hidden():
    t = prepare.template(RELEASE, GRADEBOOK)
    assert [c.id for c in t.cells] == ["intro", "answer", "test_answer-visible", "test_answer"]
    assert "BEGIN HIDDEN TESTS" in t.cells[3].source and "assert f(1)" not in t.cells[3].source
    assert "BEGIN HIDDEN" not in t.cells[2].source and "nbgrader" not in t.cells[2].metadata


def test_merge_repairs_a_damaged_submission_and_says_so():
    t = prepare.template(RELEASE, GRADEBOOK)
    answer = nbformat.v4.new_code_cell("def f(x):\n    return x", id="answer")  # nbgrader metadata lost
    helper = nbformat.v4.new_code_cell("HELPER = 1", id="mine")
    tampered = _graded("code", "test_answer", "pass  # no test", locked=True, grade=True, points=99)
    nb, notes = prepare.merge(t, [RELEASE.cells[0], answer, helper, tampered], {"test_answer": "assert f(1) == 1"})
    sources = [c.source for c in nb.cells]
    assert "def f(x):\n    return x" in sources and "HELPER = 1" in sources
    assert sources.index("HELPER = 1") == sources.index("def f(x):\n    return x") + 1, "added cells stay where they were"
    assert nb.cells[-1].metadata["nbgrader"]["points"] == 1 and "BEGIN HIDDEN" in nb.cells[-1].source
    assert any("damaged metadata" in n for n in notes) and any("was changed" in n for n in notes)


def test_merge_restores_deleted_test_cells_and_reports_missing_answers():
    t = prepare.template(RELEASE, GRADEBOOK)
    nb, notes = prepare.merge(t, [RELEASE.cells[0]], {})
    assert [c.id for c in nb.cells] == ["intro", "answer", "test_answer-visible", "test_answer"]
    assert any("answer cell 'answer' is missing" in n for n in notes)
    assert any("test cell 'test_answer' was deleted" in n for n in notes)


def test_a_renamed_or_unreadable_notebook(tmp_path):
    (tmp_path / "mine.ipynb").write_text("{not json")
    path, notes = prepare.find_notebook(tmp_path, "99_demo")
    assert path.name == "mine.ipynb" and "renamed" in notes[0]
    cells, notes = prepare.read_submission(path)
    assert cells == [] and "not a readable notebook" in notes[0]


def test_merge_keeps_what_the_student_wrote_in_free_cells():
    free = nbformat.v4.new_markdown_cell("*Your answer here.*", id="a_question")
    release = _nb(RELEASE.cells[0], free, *RELEASE.cells[1:])
    t = prepare.template(release, GRADEBOOK)
    written = nbformat.v4.new_markdown_cell("Because the glyph predicts the class.", id="a_question")
    nb, _ = prepare.merge(t, [release.cells[0], written], {})
    assert nb.cells[1].source == "Because the glyph predicts the class."
