"""The library's shape: files a reader can hold, one hook mechanism, no reach into private names,
no import cycle, public names of shared/API.md where they were, matplotlib only when plotting."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import xai_lab

ROOT = Path(xai_lab.__file__).parent
FILES = sorted(ROOT.rglob("*.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(["xai_lab", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def _imports(path: Path, top_level_only: bool):
    """``(target module, names)`` of the relative imports of a file."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            yield ".".join(base + ([node.module] if node.module else [])), [a.name for a in node.names]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_are_short_and_import_no_private_name(path):
    assert len(path.read_text().splitlines()) <= 400, f"{path.name}: over 400 lines, split it"
    for target, names in _imports(path, top_level_only=False):
        private = [n for n in names if n.startswith("_") and n != "__all__"]
        assert not private, f"{path.name} imports private names {private} from {target}"


def test_every_hook_goes_through_xai_lab_hooks():
    for path in FILES:
        if path.name == "hooks.py":
            continue
        text = path.read_text()
        for call in ("register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"):
            assert call not in text, f"{path.relative_to(ROOT)} registers a hook itself ({call}): use xai_lab.hooks"


def test_no_import_cycle_at_import_time():
    graph = {_module(p): {t for t, _ in _imports(p, top_level_only=True)} for p in FILES}
    done, active = set(), []

    def visit(m):
        if m in active:
            raise AssertionError(f"import cycle: {' -> '.join(active[active.index(m):] + [m])}")
        if m in done:
            return
        active.append(m)
        for t in graph.get(m, ()):
            if t != m and not m.startswith(t + "."):  # a submodule's `from .. import` of its package's siblings
                visit(t)
        active.pop()
        done.add(m)

    for m in graph:
        visit(m)


@pytest.mark.parametrize("module, names", [
    ("data", ["flowers", "Flowers"]),
    ("models", ["load", "available", "train", "predict", "evaluate", "forward_time"]),
    ("hooks", ["capture", "taps", "forward_to", "input_of", "count_passes", "frozen", "swapped", "replaced"]),
    ("explain", ["saliency", "deconvnet", "guided_backprop", "integrated_gradients", "smoothgrad", "occlusion",
                 "rise", "lime", "cam", "grad_cam", "grad_cam_pp", "lrp", "contrastive", "by_interpretation",
                 "METHODS", "count_passes", "show"]),
    ("interpret", ["quantile_thresholds", "dissect", "compose", "relevant_units", "maximize", "atlas",
                   "plot_detectors", "plot_atlas"]),
    ("viz", ["show", "show_flowers", "bars", "table"]),
    ("grading", ["check", "forbid", "setup_notebook", "REFERENCE_IMPLEMENTATIONS"]),
])
def test_public_names_stay_where_they_were(module, names):
    import importlib

    mod = importlib.import_module(f"xai_lab.{module}")
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"xai_lab.{module} lost {missing}"
    assert set(getattr(mod, "__all__", names)) >= set(names) - {"plot_detectors", "plot_atlas"}


def test_only_plotting_imports_matplotlib():
    code = ("import sys, xai_lab.data, xai_lab.models, xai_lab.hooks, xai_lab.explain, xai_lab.interpret, "
            "xai_lab.viz, xai_lab.grading; print(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing the library imported {out.strip()}"


@pytest.mark.parametrize("package, files", [
    ("design", ["bottleneck", "prototypes", "inconsistency"]),
    ("evaluate", ["units", "sanity", "ablation", "localisation", "agreement"]),
])
def test_lazy_packages_list_every_public_name_of_their_files(package, files):
    """A lazy package's ``__all__`` is its API for the grader (``grading.in_api``: what a stub may
    replace, what ``forbid`` treats as a tool of its own): every public name of its files, each
    resolving to the file's object (``build``/``skeleton`` of the design files stay per file)."""
    import importlib

    pkg = importlib.import_module(f"xai_lab.{package}")
    for f in files:
        mod = importlib.import_module(f"xai_lab.{package}.{f}")
        names = [n for n in mod.__all__ if n not in ("build", "skeleton")]
        assert set(names) <= set(pkg.__all__), f"xai_lab.{package}.__all__ misses {set(names) - set(pkg.__all__)}"
        assert all(getattr(pkg, n) is getattr(mod, n) for n in names)
