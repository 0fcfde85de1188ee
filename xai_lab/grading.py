"""Helpers for nbgrader test cells.

- :func:`check` compares a student's value with the hidden reference output of an exercise and
  fails with a readable message. With ``XAI_LAB_RECORD_REFERENCES=1`` (``make references``) it
  records the value instead: the references are the solution notebook's own outputs.
- :func:`forbid` makes the library's own implementation of an exercise unusable while the
  student's function runs, whatever name the student reaches it by (an alias, an import inside
  the function, a reference kept in a variable, a copy of the function): it watches for the
  implementation's *code objects* being executed, and fails the test if they are.
- :func:`setup_notebook` shows warnings on stdout, so that a PyTorch warning never turns a
  correct answer into a failed test (nbgrader scores a test cell that writes to stderr as 0).

References live outside ``course/``: in ``$XAI_LAB_REFERENCES`` or the repository's
``references/`` folder, one ``<assignment>.pt`` per assignment.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import torch

from .exercises import REFERENCE_IMPLEMENTATIONS  # the exercise map, a module of its own

__all__ = ["check", "compare", "forbid", "ForbiddenCall", "implementation", "code_objects", "in_api", "resolve",
           "setup_notebook", "default_threads", "references_dir", "load_references", "REFERENCE_IMPLEMENTATIONS",
           "RECORD_ENV", "GRADING_ENV", "THREADS_ENV"]

RECORD_ENV = "XAI_LAB_RECORD_REFERENCES"
GRADING_ENV = "XAI_LAB_GRADING"  # set in the grading sandbox: hidden tests record, the grader judges
THREADS_ENV = "XAI_LAB_THREADS"


# ------------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------------
def references_dir() -> Path:
    """Where the hidden reference outputs are: ``$XAI_LAB_REFERENCES`` or ``<repo>/references``."""
    env = os.environ.get("XAI_LAB_REFERENCES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "references"


def _ref_path(assignment: str) -> Path:
    return references_dir() / f"{assignment}.pt"


def load_references(assignment: str, folder: Path | None = None) -> dict:
    """The reference outputs of ``assignment`` (from ``folder``, default :func:`references_dir`)."""
    path = Path(folder) / f"{assignment}.pt" if folder is not None else _ref_path(assignment)
    if not path.exists():
        raise FileNotFoundError(
            f"no reference outputs for {assignment!r} at {path}: run `make references`, or set "
            f"XAI_LAB_REFERENCES to the folder that holds {path.name}")
    return torch.load(path, weights_only=True)


def _to_storable(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_storable(v) for v in value) if isinstance(value, list) else \
            tuple(_to_storable(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_storable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a reference of type {type(value).__name__}")


def _record(assignment: str, exercise: str, value) -> None:
    path = _ref_path(assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    refs = torch.load(path, weights_only=True) if path.exists() else {}
    refs[exercise] = _to_storable(value)
    torch.save(dict(sorted(refs.items())), path)
    print(f"recorded reference {assignment}/{exercise}")


def check(assignment: str, exercise: str, value, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """The hidden test's verdict on ``value``, the student's result on the hidden inputs.

    - When grading (``$XAI_LAB_GRADING=1``, set in the sandbox): *record* ``value`` as plain data
      (:mod:`xai_lab.records`) in the cell's output; the grader compares it with the reference,
      outside the student's kernel, with the tolerance written in the instructor's source.
    - With ``$XAI_LAB_RECORD_REFERENCES=1`` (``make references``): store ``value`` as the reference.
    - Otherwise (an instructor or self-learner running the solutions): compare here and raise an
      AssertionError that says how the value is off, without printing the reference.
    """
    if os.environ.get(RECORD_ENV) == "1":
        _record(assignment, exercise, value)
        return
    if os.environ.get(GRADING_ENV) == "1":
        from IPython.display import display

        from . import records

        display({records.MIME: {"assignment": assignment, "exercise": exercise,
                                "value": records.encode(value)}}, raw=True)
        print(f"{exercise}: result recorded for the grader")
        return
    refs = load_references(assignment)
    if exercise not in refs:
        raise KeyError(f"no reference for {assignment}/{exercise}; run `make references`")
    problems = compare(value, refs[exercise], rtol=rtol, atol=atol)
    if problems:
        raise AssertionError(f"{exercise}: your result differs from the reference on the hidden "
                             f"inputs:\n  " + "\n  ".join(problems[:5]))
    print(f"{exercise}: matches the reference")


def compare(value, expected, rtol: float = 1e-4, atol: float = 1e-5, path: str = "result") -> list[str]:
    """Differences between ``value`` and ``expected`` as readable lines (empty list: they match).

    Tensors and arrays are compared by shape and values (NaN equals NaN); numbers with the same
    tolerance; tuples, lists and dicts element by element. Messages describe *how* a value is
    off (shape, dtype kind, largest difference and where) without printing the reference.
    """
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        try:
            v = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        except Exception:
            return [f"{path}: expected a tensor, got {type(value).__name__}"]
        e = torch.as_tensor(expected)
        if tuple(v.shape) != tuple(e.shape):
            return [f"{path}: expected shape {tuple(e.shape)}, got {tuple(v.shape)}"]
        if e.dtype == torch.bool or not (e.dtype.is_floating_point or e.dtype.is_complex):
            if v.dtype.is_floating_point and not e.dtype.is_floating_point:
                if not torch.equal(v, v.round()):
                    return [f"{path}: expected integer values, got {v.dtype}"]
            wrong = (v.to(e.dtype) != e) if e.dtype != torch.bool else (v.bool() != e)
            if wrong.any():
                idx = tuple(int(i) for i in wrong.nonzero()[0])
                return [f"{path}: {int(wrong.sum())} of {e.numel()} entries differ (first at index {idx})"]
            return []
        v, e = v.double().detach().cpu(), e.double()
        close = torch.isclose(v, e, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            where = lambda mask: tuple(int(i) for i in mask.nonzero()[0])  # noqa: E731 (the first index of a mask)
            one_nan = torch.isnan(v) ^ torch.isnan(e)  # a number where none is defined, or a nan where one is
            text = f"{path}: {int((~close).sum())} of {e.numel()} values differ"
            if one_nan.any():
                text += f"; {int(one_nan.sum())} of them a nan on one side only (first at index {where(one_nan)})"
            diff = torch.where(close | one_nan, 0.0, (v - e).abs())
            if (diff > 0).any():
                text += (f"; largest {'other ' if one_nan.any() else ''}difference {diff.max().item():.3g} "
                         f"at index {where(diff == diff.max())}")
            return [text]
        return []
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a dict, got {type(value).__name__}"]
        if set(value) != set(expected):
            return [f"{path}: expected keys {sorted(map(str, expected))}, got {sorted(map(str, value))}"]
        return [p for k in expected for p in compare(value[k], expected[k], rtol, atol, f"{path}[{k!r}]")]
    if isinstance(expected, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(expected):
            return [f"{path}: expected a sequence of length {len(expected)}, got {value!r:.60}"]
        return [p for i, (a, b) in enumerate(zip(value, expected))
                for p in compare(a, b, rtol, atol, f"{path}[{i}]")]
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return [] if value == expected else [f"{path}: not the expected answer ({value!r})"]
    if isinstance(expected, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{path}: expected a number, got {type(value).__name__}"]
        if math.isnan(expected) and math.isnan(value):
            return []
        if not math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
            return [f"{path}: {value!r} is off by {abs(value - expected):.3g}"]
        return []
    raise TypeError(f"cannot compare with a reference of type {type(expected).__name__}")


# ------------------------------------------------------------------------------------------------
# guard against calling the library's own implementation
# ------------------------------------------------------------------------------------------------
class ForbiddenCall(AssertionError):
    """Raised when a student's function runs the library's reference implementation."""


def resolve(target):
    """The function or class at a dotted path inside ``xai_lab`` (``"explain.grad_cam"``,
    ``"explain.base.layer_gradients"``), or ``target`` itself when it is not a string."""
    if not isinstance(target, str):
        return target
    import importlib

    parts = target.split(".")
    for cut in range(len(parts) - 1, -1, -1):  # the longest importable module prefix
        try:
            obj = importlib.import_module(".".join(["xai_lab", *parts[:cut]]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve xai_lab.{target}")


def code_objects(obj) -> list:
    """The code objects written in a function (with the functions it nests) or in a class's methods
    and property accessors."""
    if inspect.isclass(obj):
        funcs = []
        for member in vars(obj).values():
            accessors = (member.fget, member.fset, member.fdel) if isinstance(member, property) else \
                (getattr(member, "__func__", member),)
            funcs += [inspect.unwrap(f) for f in accessors if inspect.isfunction(f)]
    else:
        func = inspect.unwrap(getattr(obj, "__func__", obj))
        if not inspect.isfunction(func):
            raise TypeError(f"cannot forbid {obj!r}: not a Python function or class")
        funcs = [func]
    found, todo = [], [f.__code__ for f in funcs]
    while todo:
        code = todo.pop()
        found.append(code)
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


def in_api(obj) -> bool:
    """Whether ``obj`` is in the public API of its package (``xai_lab.explain.__all__`` for
    ``xai_lab.explain.cam.grad_cam``; a top-level module's own ``__all__``)."""
    return obj.__name__ in _api(obj.__module__)


def _api(module: str) -> set:
    """The public API around a module: its package's ``__all__`` (``xai_lab.explain`` for
    ``xai_lab.explain.lime``), or the module's own for a top-level module (``xai_lab.analysis``)."""
    package = module.rpartition(".")[0] if module.count(".") >= 2 else module
    return set(getattr(sys.modules.get(package), "__all__", ()))


def implementation(obj) -> set:
    """The code objects of ``obj`` and of every function and class *of its own module* that it
    reaches through the module's globals (directly, through a dict or tuple of them, or through
    the functions those reach): a public method together with its helpers. Functions of the
    package's public API that it calls (``explain.superpixels`` inside ``explain.lime``) are tools
    of their own, forbidden only where an exercise lists them."""
    module = getattr(obj, "__module__", None)
    namespace = vars(sys.modules[module]) if module in sys.modules else {}
    api = _api(module) if module else set()

    def own(v):
        return ((inspect.isfunction(v) or inspect.isclass(v)) and getattr(v, "__module__", None) == module
                and v.__name__ not in api)

    codes, seen, todo = set(), set(), [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        for code in code_objects(o):
            codes.add(code)
            for name in code.co_names:
                v = namespace.get(name)
                values = list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else [v]
                todo += [u for u in values if own(u)]
    return codes


def _names(targets):
    out = []
    for t in targets:
        if isinstance(t, str) and t in REFERENCE_IMPLEMENTATIONS:
            out += REFERENCE_IMPLEMENTATIONS[t]
        else:
            out.append(t)
    return out


@contextlib.contextmanager
def forbid(*targets):
    """Fail if the library's implementation of an exercise runs inside the block.

    ``targets``: exercise ids (``"00_foundations.accuracy"``, see ``REFERENCE_IMPLEMENTATIONS``),
    dotted paths inside ``xai_lab`` (``"analysis.accuracy"``) or functions. A forbidden function
    raises :class:`ForbiddenCall` as soon as it is entered; a student who catches that error still
    fails when the block ends. Warnings raised in the block are shown on stdout.
    """
    codes, labels = set(), {}
    for target in _names(targets):
        obj = resolve(target)
        for code in implementation(obj):
            codes.add(code)
            labels[code] = f"xai_lab.{target}" if isinstance(target, str) else getattr(obj, "__qualname__", str(obj))
    hits = []

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            hits.append(labels[frame.f_code])
            raise ForbiddenCall(f"your code called the library's own implementation "
                                f"({labels[frame.f_code]}); write this exercise yourself")
        return None  # no line tracing: only function entries are watched

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with _warnings_to_stdout():
            yield
    finally:
        sys.settrace(previous)
    if hits:
        raise ForbiddenCall(f"your code called the library's own implementation ({hits[0]}); "
                            f"write this exercise yourself")


# ------------------------------------------------------------------------------------------------
# notebooks
# ------------------------------------------------------------------------------------------------
def _show_on_stdout(message, category, filename, lineno, file=None, line=None):
    print(f"{category.__name__}: {message} ({Path(filename).name}:{lineno})", file=sys.stdout)


@contextlib.contextmanager
def _warnings_to_stdout():
    with warnings.catch_warnings():
        warnings.showwarning = _show_on_stdout
        yield


def default_threads() -> int:
    """Torch threads for one notebook kernel: ``$XAI_LAB_THREADS``, else half the cores (at least
    one), so that two notebooks, or a notebook beside a grader, do not oversubscribe the cores
    (OpenMP threads that wait for a busy core make torch many times slower, not a little)."""
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            threads = int(env)
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads, got {env!r}") from None
        if threads < 1:
            raise ValueError(f"{THREADS_ENV} must be >= 1, got {env!r}")
        return threads
    return max(1, (os.cpu_count() or 1) // 2)


def setup_notebook(seed: int = 0, threads: int | None = None) -> None:
    """First cell of every assignment: warnings to stdout, fixed seeds, and ``threads`` torch
    threads (default: :func:`default_threads`)."""
    warnings.showwarning = _show_on_stdout
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(default_threads() if threads is None else threads)
