"""A student's workspace: their own copy of the released assignments, which nothing overwrites.

``make lab`` calls ``sync_workspace`` (through ``xai-lab workspace``) and opens JupyterLab on ``workspace/``
(git-ignored). The first time, every assignment of ``course/`` is copied in; afterwards only an assignment
released later (a folder of ``course/`` that ``workspace/`` does not have yet) is. A folder already in the
workspace is never written to, whatever ``course/`` holds now: ``make release`` (``generate_assignment --force``
into ``course/``) and a ``git pull`` change ``course/`` only, and the student's answers and files stay.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .layout import REPO

# What is not copied from course/: JupyterLab's autosaves and Python caches of whoever opened course/ directly.
IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")


def sync_workspace(root: Path = REPO, dest: Path | None = None) -> list[str]:
    """Copy into ``dest`` (default ``root/workspace``) each assignment folder of ``root/course`` that ``dest``
    does not have; return their names, in order (empty: the workspace was up to date). Nothing already in
    ``dest`` is modified. Raises FileNotFoundError if ``root/course`` is missing, NotADirectoryError if
    ``dest`` exists and is not a folder."""
    course = Path(root) / "course"
    dest = Path(root) / "workspace" if dest is None else Path(dest)
    if not course.is_dir():
        raise FileNotFoundError(f"no released assignments: {course} is not a folder "
                                "(an instructor creates it with `make release`)")
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"the workspace {dest} exists and is not a folder: move it away and run again")
    dest.mkdir(parents=True, exist_ok=True)
    added = []
    for folder in sorted(p for p in course.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = dest / folder.name
        if target.exists():
            continue
        # copy next to the target, then rename: an interrupted copy never leaves a half assignment that a
        # later sync would take for the student's own and never complete
        partial = dest / f".{folder.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial, ignore=IGNORED)
        partial.rename(target)
        added.append(folder.name)
    return added
