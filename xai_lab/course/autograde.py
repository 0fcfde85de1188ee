"""Grading a class: the kernel computes in a sandbox, the grader judges, nbgrader keeps the grades.

For each submission, independently and in parallel (``jobs`` at once on this machine, or on the
workers of a Dask cluster):

1. :mod:`.prepare` rebuilds the notebook to run from the instructor's template and the student's
   answers (a renamed notebook, damaged metadata, deleted or edited test cells are repaired and
   reported);
2. :mod:`.sandbox` executes it in a bubblewrap sandbox (no network, no references, no solutions,
   no gradebook, no other student's files, the library's own implementation of the exercises
   replaced by stubs, memory and time limits, one thread), restarting the kernel past a cell that
   kills it or does not stop;
3. :mod:`.judge` compares the recorded results with the references, outside the sandbox.

Then one ``nbgrader autograde`` run (without executing anything) stores the judged notebooks'
scores in the gradebook: the only step that writes to it, so SQLite needs no locking and a
PostgreSQL ``db_url`` works the same.
"""
from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from ..grading import load_references
from . import judge, prepare, sandbox
from .grades import format_table, scores
from .layout import REPO, assignments, manual_cells, notebook_path
from .nbgrader_tools import ensure_in_gradebook, gradebook_url, nbgrader

__all__ = ["autograde_assignment", "grade_submission", "submissions"]

# nbgrader's sanitising and autograding steps without the ones we replace: ClearOutput (the outputs
# are the judged ones), OverwriteCells (the cells were rebuilt from the template), Execute (done in
# the sandbox).
SANITIZE = ["nbgrader.preprocessors.OverwriteKernelspec", "nbgrader.preprocessors.CheckCellMetadata"]
RECORD = ["nbgrader.preprocessors.IgnorePattern", "nbconvert.preprocessors.ClearMetadataPreprocessor",
          "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
          "nbgrader.preprocessors.AssignLatePenalties", "nbgrader.preprocessors.CheckCellMetadata"]


def submissions(root: Path, assignment: str) -> list[str]:
    """Students with a folder ``submitted/<student>/<assignment>/``."""
    base = Path(root) / "submitted"
    return sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())


def _gradebook_sources(root: Path, assignment: str) -> dict:
    """``{grade_id: source}`` of the assignment's cells as the gradebook has them (hidden tests in)."""
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(root)) as gb:
        nb = gb.find_notebook(assignment, assignment)
        return {c.name: c.source for c in nb.source_cells}


def grade_submission(job: dict) -> dict:
    """Prepare, run and judge one submission (a plain dict in and out, for a process or a Dask worker).

    ``job``: ``folder`` (the submission), ``assignment``, ``template`` and ``release_sources``
    (from the driver), ``sources`` (test cell grade id -> instructor source), ``references_dir``,
    ``package`` (the stripped library), ``workdir``, ``sandbox`` (Sandbox fields), ``out`` (where to
    write the judged notebook). Returns ``{"notes", "events", "verdicts", "seconds"}``.
    """
    t0 = time.perf_counter()
    folder, aid = Path(job["folder"]), job["assignment"]
    path, notes = prepare.find_notebook(folder, aid)
    cells, more = prepare.read_submission(path)
    template = nbformat.from_dict(job["template"])
    nb, merged = prepare.merge(template, cells, job["release_sources"])
    executed, report = sandbox.run_notebook(nb, aid, sandbox.Sandbox(**job["sandbox"]), Path(job["package"]),
                                            Path(job["workdir"]))
    references = load_references(aid, Path(job["references_dir"]))
    verdicts = judge.judge_notebook(executed, job["sources"], references)
    out = Path(job["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, out)
    if path is not None and (path.parent / "timestamp.txt").is_file():
        shutil.copy(path.parent / "timestamp.txt", out.parent / "timestamp.txt")
    return {"notes": notes + more + merged, "events": report.get("events", []),
            "verdicts": {k: v[0] for k, v in verdicts.items()}, "seconds": time.perf_counter() - t0}


def _run_jobs(jobs: list[dict], workers: int, scheduler: str | None, desc: str) -> list[dict]:
    """Results of :func:`grade_submission` for every job, in order, with a progress bar (ETA)."""
    results = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="notebook")
    if scheduler:  # another machine's workers: Dask distributed (the folders must be shared)
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            pending = {client.submit(grade_submission, job, pure=False): i for i, job in enumerate(jobs)}
            for done in as_completed(pending):
                results[pending[done]] = done.result()
                bar.update()
    else:
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:  # each job is a sandboxed process
            pending = {pool.submit(grade_submission, job): i for i, job in enumerate(jobs)}
            for done in futures.as_completed(pending):
                results[pending[done]] = done.result()
                bar.update()
    bar.close()
    return results


def autograde_assignment(root: Path, assignment: str, jobs: int = 1, scheduler: str | None = None,
                         limits: sandbox.Sandbox | None = None, workdir: Path | None = None) -> dict:
    """Grade every submission of ``assignment`` into the gradebook; ``{student: result}``."""
    root = Path(root)
    students = submissions(root, assignment)
    if not students:
        return {}
    problem = sandbox.available()
    if problem:
        raise RuntimeError(f"the grading sandbox cannot run here: {problem}")
    ensure_in_gradebook(root, assignment)
    release = nbformat.read(notebook_path(root, "course", assignment), as_version=4)
    gb_sources = _gradebook_sources(root, assignment)
    tmpl = prepare.template(release, gb_sources)
    tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in tmpl.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution")}
    release_sources = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in release.cells}
    limits = limits or sandbox.Sandbox()
    limits = dataclasses.replace(limits, hide=[*limits.hide, root.resolve()])  # this course's folder too
    with tempfile.TemporaryDirectory(prefix="xai-grade-", dir=workdir) as tmp:
        tmp = Path(tmp)
        package = sandbox.stripped_package(assignment, tmp / "package")
        staging = tmp / "staging"
        job_list = [{"folder": str(root / "submitted" / s / assignment), "assignment": assignment,
                     "template": tmpl, "release_sources": release_sources, "sources": tests,
                     "references_dir": str(_references_dir()), "package": str(package),
                     "workdir": str(tmp / "run" / s), "sandbox": limits.fields(),
                     "out": str(staging / s / assignment / f"{assignment}.ipynb")} for s in students]
        results = _run_jobs(job_list, jobs, scheduler, assignment)
        nbgrader(root, "autograde", assignment, "--force", f"--CourseDirectory.submitted_directory={staging}",
                 *[f"--Autograde.sanitize_preprocessors={p}" for p in SANITIZE],
                 *[f"--Autograde.autograde_preprocessors={p}" for p in RECORD])
    report = dict(zip(students, results))
    _save_report(root, assignment, report)
    return report


def _references_dir() -> Path:
    from ..grading import references_dir
    return references_dir()


def _save_report(root: Path, assignment: str, report: dict) -> None:
    """``autograded/<assignment>-report.json``: per student, what was repaired and what happened."""
    path = Path(root) / "autograded" / f"{assignment}-report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True))


def autograde(root: Path = REPO, ids: list[str] | None = None, jobs: int = 1, scheduler: str | None = None,
              limits: sandbox.Sandbox | None = None, show: bool = True) -> dict:
    """Grade the submissions of each assignment (all by default); print the table and the notes."""

    tables = {}
    for aid in ids or assignments(root):
        report = autograde_assignment(root, aid, jobs, scheduler, limits)
        if not report:
            continue
        tables[aid] = scores(root, aid)
        if show:
            print(format_table(aid, tables[aid], manual_cells(root, aid)))
            for student, result in report.items():
                for line in result["notes"] + [f"{e}" for e in result["events"]]:
                    print(f"  {student}: {line}")
    return tables
