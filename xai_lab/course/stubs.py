"""The library without its answers: a copy of ``xai_lab`` in which the functions and classes that
implement an assignment's exercises are stubs raising :class:`NotAvailable`.

:func:`stripped_package` builds it once per grading run; the sandbox mounts it over the installed
package, so a subprocess, ``inspect.getsource`` + ``exec`` or a copied code object finds nothing to
run. What is stubbed: every name ``grading.REFERENCE_IMPLEMENTATIONS`` lists for the assignment
with the helpers of its own module that it reaches (``grading.implementation``); shared plumbing
that the rest of the public API needs stays (see ``_plan``; listed in the copy's ``.stripped``).
"""
from __future__ import annotations

import ast
import copy
import inspect
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..grading import code_objects, in_api

__all__ = ["NotAvailable", "unavailable", "package_dir", "stripped_package"]

_STUB_MODULE = "_not_available"  # NotAvailable, in the stripped copy


_STUB_SOURCE = '''
class NotAvailable(RuntimeError):
    """This part of the library is not available while your notebook is graded."""


def unavailable(message: str):
    """Raise NotAvailable (for the stubs of lambdas, which cannot raise)."""
    raise NotAvailable(message)
'''
exec(_STUB_SOURCE)  # NotAvailable and unavailable, here and (the same text) in every stripped copy


def package_dir() -> Path:
    import xai_lab
    return Path(xai_lab.__file__).resolve().parent


# ------------------------------------------------------------------------------------------------
# the package without the solutions
# ------------------------------------------------------------------------------------------------
def _ours(value) -> list:
    """The package's functions and classes in ``value`` (itself, or in a dict, tuple or list)."""
    values = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else [value]
    return [v for v in values if (inspect.isfunction(v) or inspect.isclass(v))
            and (getattr(v, "__module__", None) or "").split(".")[0] == "xai_lab"]


def _closure(obj) -> tuple[set, set]:
    """The ids of the package's functions and classes ``obj`` reaches (through the globals of their
    modules, the package's modules in them, and base classes), and their code objects."""
    todo, seen, codes = [obj], set(), set()
    while todo:
        o = todo.pop()
        if id(o) not in seen:
            seen.add(id(o))
            namespace = vars(sys.modules[o.__module__])
            todo += [b for b in getattr(o, "__mro__", ())[1:] if _ours(b)]
            for code in code_objects(o):
                codes.add(code)
                for value in map(namespace.get, code.co_names):
                    if inspect.ismodule(value) and value.__name__.split(".")[0] == "xai_lab":
                        todo += [u for n in code.co_names for u in _ours(getattr(value, n, None))]
                    todo += _ours(value)
    return seen, codes


def _needed(stubbed: set) -> set:
    """Code objects that the public API of the package (the ``__all__`` of its modules and subpackages,
    instructor tooling aside) needs, from the functions and classes that reach none of ``stubbed``."""
    import importlib
    import pkgutil

    roots = {id(o): o for info in pkgutil.iter_modules([str(package_dir())]) if info.name not in ("course", "cli")
             for module in [importlib.import_module(f"xai_lab.{info.name}")]
             for name in getattr(module, "__all__", ()) for o in _ours(getattr(module, name, None))}
    return {code for root in roots.values() for reached, codes in [_closure(root)] if not reached & stubbed
            for code in codes}


def _locator(package: Path):
    """``locate(file, line) -> (file, index, dotted name)`` of the top-level statement holding the line."""
    trees = {}

    def locate(file: str, line: int):
        path = Path(file).resolve()
        if package not in path.parents:
            raise ValueError(f"{file} is not inside the package {package}: cannot strip it")
        if path not in trees:
            trees[path] = ast.parse(path.read_text(), str(path))
        for i, node in enumerate(trees[path].body):
            if min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno]) <= line <= node.end_lineno:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                                         ast.AnnAssign)):
                    raise ValueError(f"{path}:{line} is not in a function, class or assignment: cannot stub it")
                module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
                return path, i, f"{module}.{getattr(node, 'name', None) or ast.unparse(node).split('=')[0].strip()}"
        raise ValueError(f"no top-level statement of {path} holds line {line}")
    return locate


def _plan(assignment: str, package: Path) -> tuple[dict, list[str]]:
    """``{file: {statement index: message of its stub}}``, and the names kept as shared plumbing.

    Stubbed: the targets ``grading.REFERENCE_IMPLEMENTATIONS`` lists for the exercises of
    ``assignment`` and the helpers of their own modules they use (``grading.implementation``: what
    ``grading.forbid`` watches). A listed target of the package's public API (``explain.grad_cam``,
    ``hooks.taps``) is always stubbed, whatever else needs it; any other listed target or helper is
    kept when a public function or class that reaches none of those needs it (``explain.base.Target``
    and ``scatter_rows`` under ``explain.integrated_gradients``)."""
    from .. import grading

    keys = [k for k in grading.REFERENCE_IMPLEMENTATIONS if k.split(".")[0] == assignment]
    if not keys:
        raise ValueError(f"no exercise of {assignment!r} in grading.REFERENCE_IMPLEMENTATIONS")
    objects = {t: grading.resolve(t) for k in keys for t in grading.REFERENCE_IMPLEMENTATIONS[k]}
    public = [o for o in objects.values() if in_api(inspect.unwrap(o))]
    locate, stubs, kept, needed = _locator(package), {}, [], set()
    for code in _needed({id(o) for o in public} | {id(inspect.unwrap(o)) for o in public}):
        try:
            needed.add(locate(code.co_filename, code.co_firstlineno)[:2])
        except (ValueError, OSError):
            pass
    message = "{} is not available while your notebook is graded: {}".format
    for target, obj in objects.items():  # by the name the list gives (a dataclass may have no code of its own)
        if "." not in (bare := inspect.unwrap(obj)).__qualname__:
            path, i, _ = locate(inspect.getsourcefile(bare), inspect.getsourcelines(bare)[1])
            if (path, i) not in needed or obj in public:
                stubs.setdefault((path, i), message(f"xai_lab.{target}", "the exercise asks you to write it"))
            else:
                kept.append(f"xai_lab.{target}")
    for code in {c for obj in objects.values() for c in grading.implementation(obj)}:
        if os.path.isfile(code.co_filename):  # not the methods dataclasses generate
            path, i, label = locate(code.co_filename, code.co_firstlineno)
            if (path, i) in needed and (path, i) not in stubs:
                kept.append(label)
            else:
                stubs.setdefault((path, i), message(label, "it is part of the library's solution of an exercise"))
    out = {}
    for (path, i), text in stubs.items():
        out.setdefault(path, {})[i] = text
    return out, sorted(set(kept))


def _stub(node, message: str):
    """``node`` with its name, decorators (and bases) kept and a body that raises NotAvailable; in
    an assignment (``OPS = {"AND": lambda a, b: a & b}``) every lambda raises it."""
    stub = copy.copy(node)
    raise_ = f"raise _NotAvailable({message!r})"
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        class Lambdas(ast.NodeTransformer):
            def visit_Lambda(self, _):
                return ast.parse(f"lambda *args, **kwargs: _unavailable({message!r})", mode="eval").body
        return Lambdas().visit(stub)
    if isinstance(node, ast.ClassDef):  # still a class: isinstance works, no instance can be made
        stub.body = ast.parse(f"def __new__(cls, *args, **kwargs):\n    {raise_}\n"
                              f"def __init__(self, *args, **kwargs):\n    {raise_}").body
    else:
        stub.args, stub.returns = ast.parse("def f(*args, **kwargs): pass").body[0].args, None
        stub.body = ast.parse(raise_).body
    stub.body.insert(0, ast.Expr(ast.Constant(message)))
    return stub


def _strip_file(path: Path, stubs: dict[int, str]) -> str:
    tree = ast.parse(path.read_text(), str(path))
    body = [_stub(n, stubs[i]) if i in stubs else n for i, n in enumerate(tree.body)]
    head = 0  # the import goes after the docstring and the __future__ imports
    while head < len(body) and (isinstance(body[head], ast.ImportFrom) and body[head].module == "__future__"
                                or head == 0 and isinstance(body[0], ast.Expr)
                                and isinstance(body[0].value, ast.Constant)):
        head += 1
    body.insert(head, ast.parse(f"from xai_lab.{_STUB_MODULE} import NotAvailable as _NotAvailable, "
                                f"unavailable as _unavailable").body[0])
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def stripped_package(assignment: str, dest: Path) -> Path:
    """``dest/xai_lab``: a copy of the installed package (weights included, no ``__pycache__``) in
    which every top-level function and class implementing an exercise of ``assignment`` (the
    targets of ``grading.REFERENCE_IMPLEMENTATIONS`` and the helpers ``grading.implementation``
    finds) is a stub raising :class:`NotAvailable`; a class stays a class (``isinstance`` works).
    Built once per ``dest``: a copy already made for ``assignment`` is returned as it is."""
    dest = Path(dest)
    final, marker = dest / "xai_lab", f"stripped for {assignment}\n"
    if (final / ".stripped").is_file() and (final / ".stripped").read_text().startswith(marker):
        return final
    package = package_dir()
    targets, kept = _plan(assignment, package)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".xai_lab-", dir=dest))
    copy = tmp / "xai_lab"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path, names in targets.items():
        (copy / path.relative_to(package)).write_text(_strip_file(path, names))
    (copy / f"{_STUB_MODULE}.py").write_text(f'"""Raised by the stubs of {final}."""\n{_STUB_SOURCE}')
    (copy / ".stripped").write_text(marker + "".join(f"kept (shared by the public API): {k}\n" for k in kept))
    shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(copy, final)
    except OSError:  # built at the same time by another job: keep theirs
        if not (final / ".stripped").read_text().startswith(marker):
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return final
