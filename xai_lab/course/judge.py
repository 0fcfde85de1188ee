"""The grader judges: a graded test cell scores by what its hidden test *recorded*, checked here.

In the student's kernel a hidden test only runs the student's function on hidden inputs and
records the result (``grading.check`` -> :mod:`xai_lab.records`). Here, in the grader's process,
with the references the kernel never sees:

- which results a test cell must record, and with what tolerance, is read from the instructor's
  source of the cell (its ``grading.check(assignment, exercise, value, rtol=..., atol=...)`` calls),
  never from the kernel;
- every record of an expected result must match its reference, and at least one must be there
  (a missing record is a fail: the hidden test did not get to run the function);
- the cell's outputs are rewritten so that nbgrader's own rule (an error output means 0, an
  ``execute_result`` number means partial credit) gives exactly this verdict: what the kernel
  printed stays as text for the student, errors as one line without traceback (a traceback quotes
  hidden test code), records are removed, and a failing verdict is one error output.

So nothing the kernel does (patched helpers, swallowed exceptions, IPython events, fake partial
credit, text on stderr) can turn a wrong or missing answer into points.
"""
from __future__ import annotations

import ast
import json
import re

import nbformat

from .. import records
from ..grading import compare

__all__ = ["expected_checks", "judge_cell", "judge_notebook", "HIDDEN_RE"]

HIDDEN_RE = re.compile(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)
_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}  # grading.check's defaults


def expected_checks(source: str) -> dict:
    """``{exercise: {"assignment", "rtol", "atol"}}`` of the ``grading.check`` calls in the hidden
    part of a test cell's instructor source (arguments must be literals)."""
    out = {}
    for block in HIDDEN_RE.findall(source):
        for node in ast.walk(ast.parse(block)):  # the markers are comments
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "check" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "grading"):
                continue
            args = [ast.literal_eval(a) for a in node.args[:2]]
            tol = dict(_TOLERANCE, **{k.arg: ast.literal_eval(k.value) for k in node.keywords})
            for name, pos in (("rtol", 3), ("atol", 4)):
                if len(node.args) > pos:
                    tol[name] = ast.literal_eval(node.args[pos])
            out[args[1]] = {"assignment": args[0], "rtol": float(tol["rtol"]), "atol": float(tol["atol"])}
    return out


def _records(cell) -> tuple[dict, list]:
    """``({exercise: [values]}, problems)`` from the record outputs of an executed cell."""
    found, problems = {}, []
    for out in cell.get("outputs", []):
        payload = out.get("data", {}).get(records.MIME) if out.get("output_type") == "display_data" else None
        if payload is None:
            continue
        try:
            payload = json.loads(payload if isinstance(payload, str) else json.dumps(payload))  # plain types
            if not (isinstance(payload, dict) and isinstance(payload.get("exercise"), str)):
                raise records.RecordError("a record names no exercise")
            found.setdefault(payload["exercise"], []).append(records.decode(payload.get("value")))
        except (records.RecordError, ValueError, TypeError) as e:
            problems.append(f"an unreadable result was ignored ({e})")
    return found, problems


def _as_text(out) -> dict | None:
    """An output of the kernel as harmless stdout text for the student (None: drop it)."""
    kind = out.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": "stdout", "text": out.get("text", "")}
    if kind == "error":
        return {"output_type": "stream", "name": "stdout",
                "text": f"{out.get('ename', 'Error')}: {out.get('evalue', '')}\n"}
    data = out.get("data", {})
    if records.MIME in data:
        return None
    if kind == "execute_result":  # would be read as partial credit: keep it as text
        return {"output_type": "stream", "name": "stdout", "text": str(data.get("text/plain", "")) + "\n"}
    if kind == "display_data":
        return out
    return None


def judge_cell(cell, source: str, references: dict) -> tuple[bool, list[str]]:
    """Judge one executed test cell against ``references``; rewrite its outputs; ``(passed, lines)``."""
    expected = expected_checks(source)
    found, lines = _records(cell)
    passed = bool(expected)
    if not expected:
        lines.append("this test cell checks no recorded result: nothing to grade it by")
    for exercise, spec in expected.items():
        values = found.get(exercise, [])
        if exercise not in references:
            passed = False
            lines.append(f"{exercise}: no reference output (instructor: run `xai-lab references`)")
        elif not values:
            passed = False
            lines.append(f"{exercise}: no result was recorded: the hidden test did not get to run your "
                         f"function to the end (see the error above, or the kernel stopped)")
        else:
            problems = [p for v in values for p in compare(v, references[exercise], spec["rtol"], spec["atol"])]
            if problems:
                passed = False
                lines.append(f"{exercise}: your result differs from the reference on the hidden inputs:\n  "
                             + "\n  ".join(problems[:5]))
            else:
                lines.append(f"{exercise}: matches the reference on the hidden inputs")
    outputs = [o for o in (_as_text(out) for out in cell.get("outputs", [])) if o is not None]
    text = "\n".join(lines) + "\n"
    outputs.append({"output_type": "stream", "name": "stdout", "text": "— graded: " + text} if passed else
                   {"output_type": "error", "ename": "NotPassed", "evalue": text.strip(), "traceback": [text]})
    cell["outputs"] = [nbformat.from_dict(o) for o in outputs]
    return passed, lines


def judge_notebook(nb, sources: dict, references: dict) -> dict:
    """Judge every autograded test cell of an executed notebook in place.

    ``sources``: ``{grade_id: instructor source}`` of the autograded test cells. Returns
    ``{grade_id: (passed, lines)}``; a test cell missing from ``nb`` is not judged here (the
    caller re-adds it before executing).
    """
    verdicts = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and grade_id in sources:
            verdicts[grade_id] = judge_cell(cell, sources[grade_id], references)
    return verdicts
