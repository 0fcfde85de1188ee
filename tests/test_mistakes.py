"""Typical mistakes, planted in the solutions: each visible test must catch each mistake listed in
``tests/mistakes.py`` and say what it is.

For an assignment, the locked cells the visible tests need (found from the names they read, not the
demo cells) run once in a namespace of their own; then, for each exercise, the solution's answer
cell must pass its visible test, and each mistake (a text replacement in the solution, so that it
stays in step with it) must make the visible test fail with a message that names it.
"""
import ast
import functools
from pathlib import Path

import nbformat
import pytest

from cell_names import cell_names
from mistakes import all_mistakes

REPO = Path(__file__).resolve().parents[1]
MISTAKES = all_mistakes()


def _code(source: str) -> str:
    """The cell's Python: IPython magics dropped, hidden tests cut off."""
    source = source.split("### BEGIN HIDDEN TESTS")[0]
    return "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))


def _solution(source: str) -> str:
    """The answer cell as the solution fills it: the solution markers' lines dropped."""
    return "\n".join(ln for ln in source.splitlines() if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _top_level(source: str) -> set:
    """Names an answer cell binds for the cells after it: its functions, classes and top-level assignments (not the
    functions' arguments: ``def cam(model, x, target)`` does not provide ``model`` or ``x`` to a test)."""
    bound = set()
    for stmt in ast.parse(source).body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            bound.add(stmt.name)
        else:
            bound |= cell_names(ast.unparse(stmt))[0]
    return bound


class Assignment:
    """The solution notebook's cells by grade id, and the locked cells its visible tests need."""

    def __init__(self, aid: str):
        nb = nbformat.read(REPO / "solutions" / aid / f"{aid}.ipynb", as_version=4)
        self.cells = [(c.metadata.get("nbgrader", {}), c) for c in nb.cells if c.cell_type == "code"]
        self.by_id = {m.get("grade_id"): c for m, c in self.cells}

    def needed(self, test_ids) -> list[str]:
        """Sources of the locked, ungraded cells the visible tests read from, with what those read, in order."""
        answers = set().union(*(_top_level(_code(c.source)) for m, c in self.cells if m.get("solution")))
        free = lambda source: (lambda b, r: r - b - answers)(*cell_names(_code(source)))  # noqa: E731 (read, not bound here)
        locked = [(i, cell_names(_code(c.source))[0], free(c.source)) for i, (m, c) in enumerate(self.cells)
                  if m.get("locked") and not m.get("grade")]
        position = {m.get("grade_id"): i for i, (m, c) in enumerate(self.cells)}
        todo = {(name, position[gid]) for gid in test_ids for name in free(self.by_id[gid].source)}
        chosen = set()
        while todo:
            name, before = todo.pop()
            for i, bound, read in reversed(locked):
                if i < before and name in bound:  # the last cell before the reader that binds the name
                    if i not in chosen:
                        chosen.add(i)
                        todo |= {(r, i) for r in read}
                    break
        return [_code(self.cells[i][1].source) for i in sorted(chosen)]


@pytest.fixture(scope="module")
def namespaces(monkeypatch_module):
    from xai_lab import grading

    monkeypatch_module.setattr(grading, "setup_notebook", lambda seed=0, threads=None: __import__("torch").manual_seed(seed))
    return {}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _namespace(namespaces, aid):
    if aid not in namespaces:
        a = Assignment(aid)
        ns = {"__name__": "__notebook__"}
        for source in a.needed([f"test_{g}" for g in MISTAKES[aid]]):
            exec(compile(source, f"<{aid} locked cell>", "exec"), ns)
        namespaces[aid] = (a, ns)
    return namespaces[aid]


CASES = [(aid, gid) for aid, exercises in MISTAKES.items() for gid in exercises]


def test_every_assignment_lists_its_typical_mistakes():
    from xai_lab import course

    assert sorted(MISTAKES) == course.assignments(), "add tests/mistakes_NN.py for the new assignment"


@pytest.mark.parametrize("aid", sorted(MISTAKES))
def test_every_exercise_has_three_typical_mistakes(aid):
    exercises = [m.get("grade_id") for m, c in Assignment(aid).cells if m.get("solution")]
    few = {gid: len(MISTAKES[aid].get(gid, [])) for gid in exercises if len(MISTAKES[aid].get(gid, [])) < 3}
    assert not few, f"{aid}: exercises with fewer than three typical mistakes: {few}"
    assert set(MISTAKES[aid]) <= set(exercises), f"{aid}: not exercises: {set(MISTAKES[aid]) - set(exercises)}"


@pytest.mark.parametrize("aid, gid", CASES, ids=[f"{a}.{g}" for a, g in CASES])
def test_visible_test_names_each_typical_mistake(namespaces, aid, gid):
    a, ns = _namespace(namespaces, aid)
    answer, test = _solution(a.by_id[gid].source), _code(a.by_id[f"test_{gid}"].source)
    run = lambda src, label: exec(compile(src, f"<{aid} {label}>", "exec"), ns)  # noqa: E731
    run(answer, gid)
    run(test, f"test_{gid}")  # the solution passes
    missed = []
    for mistake in MISTAKES[aid][gid]:
        assert answer.count(mistake.old) == 1, f"{gid}: {mistake.name}: {mistake.old!r} is not once in the solution"
        run(answer.replace(mistake.old, mistake.new), f"{gid} with {mistake.name}")
        try:
            run(test, f"test_{gid}")
        except Exception as error:  # an assertion, or the error the mistake itself raises
            if mistake.says.lower() not in str(error).lower():
                missed.append(f"{mistake.name}: failed, but the message does not say {mistake.says!r}: {error}")
        else:
            missed.append(f"{mistake.name}: the visible test passed")
        finally:
            run(answer, gid)
    assert not missed, "\n".join(missed)


@functools.cache
def _released_answers(aid: str) -> dict:
    """{grade id: source} of the release's answer cells (read once per assignment)."""
    release = nbformat.read(REPO / "course" / aid / f"{aid}.ipynb", as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")}


def _chain(error):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


@pytest.mark.parametrize("aid, gid", CASES, ids=[f"{a}.{g}" for a, g in CASES])
def test_unanswered_exercise_says_so(namespaces, aid, gid):
    """The release's answer cell, untouched, makes its visible test fail with the cell's own NotImplementedError:
    never wrapped into a message about a mistake (NotImplementedError is a RuntimeError, and an ``except
    RuntimeError`` meant for another error caught it)."""
    a, ns = _namespace(namespaces, aid)
    blank = _released_answers(aid)[gid]
    answer, test = _solution(a.by_id[gid].source), _code(a.by_id[f"test_{gid}"].source)
    run = lambda src, label: exec(compile(src, f"<{aid} {label}>", "exec"), ns)  # noqa: E731
    try:
        try:
            run(_code(blank), f"{gid} as released")
        except NotImplementedError:
            pass  # raised at the top level, after what it binds (00's `answers`, all None): the test sees those
        with pytest.raises(Exception) as caught:
            run(test, f"test_{gid}")
        error = caught.value
        if not isinstance(error, NotImplementedError):
            assert not any(isinstance(e, NotImplementedError) for e in _chain(error)), \
                f"the unanswered cell's NotImplementedError became: {type(error).__name__}: {error}"
    finally:
        run(answer, gid)
