"""Typical mistakes per exercise, planted by tests/test_mistakes.py into the solution: ``old`` (text
that occurs once in the solution's answer cell) becomes ``new``, and the exercise's visible test must
fail with a message containing ``says`` (case-insensitive).

Modules ``tests/mistakes_NN*.py`` (NN: the assignment's number; a long assignment may use several, e.g.
``mistakes_02a.py``), each with ``MISTAKES = {exercise grade id: [Mistake, ...]}``; every autograded exercise
has at least three."""
import importlib
from pathlib import Path
from typing import NamedTuple


class Mistake(NamedTuple):
    name: str
    old: str
    new: str
    says: str


def all_mistakes() -> dict:
    """{assignment: {exercise: [Mistake, ...]}} from every tests/mistakes_NN.py."""
    from xai_lab import course

    found = {}
    for aid in course.assignments():
        for path in sorted(Path(__file__).parent.glob(f"mistakes_{aid[:2]}*.py")):
            module = importlib.import_module(path.stem).MISTAKES
            twice = set(module) & set(found.get(aid, {}))
            if twice:
                raise ValueError(f"{path.name}: exercises listed in two modules: {sorted(twice)}")
            found.setdefault(aid, {}).update(module)
    return found
