"""Running nbgrader and the solution notebooks: release, gradebook registration, reference outputs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .layout import REPO, assignments, notebook_path


def gradebook_url(root: Path = REPO) -> str:
    """The gradebook's database URL: ``$XAI_LAB_DB_URL`` (e.g. ``postgresql://user@host/xai``), else
    the embedded SQLite ``gradebook.db`` of the course directory (nbgrader_config.py says the same)."""
    return os.environ.get("XAI_LAB_DB_URL") or f"sqlite:///{Path(root).resolve() / 'gradebook.db'}"


def nbgrader(root: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in the course directory ``root`` (its nbgrader_config.py applies)."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    run_env = {**os.environ, **(env or {})}
    run_env.setdefault("XAI_LAB_REFERENCES", str(REPO / "references"))
    # nbgrader runs `alembic` and kernels from PATH: put this interpreter's scripts first
    run_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), run_env.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=root, env=run_env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scratch_course(dest: Path, source: Path = REPO) -> Path:
    """A fresh course directory at ``dest`` (config and solutions of ``source``), released: for
    trying the pipeline without touching the real gradebook."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(source) / "nbgrader_config.py", dest)
    shutil.copytree(Path(source) / "solutions", dest / "solutions")
    release(dest)
    return dest


def release(root: Path = REPO, ids: list[str] | None = None) -> None:
    """Regenerate ``course/<id>`` from ``solutions/<id>`` (and register the assignment in the gradebook)."""
    for aid in ids or assignments(root):
        nbgrader(root, "generate_assignment", aid, "--force")
        print(f"released {aid} -> course/{aid}")


def ensure_in_gradebook(root: Path, assignment: str) -> None:
    """Autograde needs the assignment's cells in the gradebook: register it if this gradebook lacks it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook_url(root)) as gb:
        try:
            gb.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    with tempfile.TemporaryDirectory() as tmp:  # generate into a throwaway release folder
        nbgrader(root, "generate_assignment", assignment, "--force",
                 f"--CourseDirectory.release_directory={tmp}")


def references(root: Path = REPO, ids: list[str] | None = None, timeout: int = 600) -> None:
    """Execute each solution notebook in record mode: ``grading.check`` stores its values."""
    import torch
    from nbclient import NotebookClient

    from ..grading import RECORD_ENV, references_dir

    old = os.environ.get(RECORD_ENV)
    os.environ[RECORD_ENV] = "1"
    try:
        for aid in ids or assignments(root):
            target = references_dir() / f"{aid}.pt"
            target.unlink(missing_ok=True)
            path = notebook_path(root, "solutions", aid)
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            keys = sorted(torch.load(target, weights_only=True)) if target.exists() else []
            print(f"{aid}: {len(keys)} reference outputs -> {target}")
    finally:
        if old is None:
            os.environ.pop(RECORD_ENV, None)
        else:
            os.environ[RECORD_ENV] = old
