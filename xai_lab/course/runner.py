"""Run one notebook cell by cell, so that a fault costs only the cell where it happens.

``python -m xai_lab.course.runner IN OUT [--timeout S] [--max-restarts N] [--report FILE]``

Runs inside the grading sandbox (:mod:`xai_lab.course.sandbox`), beside the student's kernel.
Every code cell runs with nbclient (errors allowed). A cell whose kernel dies (``exit()``,
``os._exit``, ``kill -9``, a crash) or that runs longer than ``S`` seconds (also a loop that ignores
the interrupt: the kernel is not interrupted but replaced) gets an error output naming what
happened (``KernelDied``, ``KernelExited``, ``CellTimeout``); a new kernel is started, the earlier
cells that did not kill their kernel are run again silently (their first outputs are kept), and
execution goes on with the next cell. After ``N`` restarts the remaining cells get a ``NotRun``
error. Nothing is restarted when nothing goes wrong.

``OUT`` and the report (JSON: ``restarts``, ``events`` = ``[{cell, kind, message}]``, ``executed`` =
the indices of the cells done) are rewritten after every cell, atomically, so a runner killed from
outside (the notebook's total time limit) or by the student's code leaves the cells done so far.
Both are written from inside the sandbox, next to the student's code, which can rewrite them: the
grader reads them back as untrusted data with :func:`read_text` (no symlinks, bounded size),
:func:`clean_report` (expected keys and types only) and :func:`merge_outputs` (outputs only, into
the input notebook, if the file is a valid notebook with the same cells), as
:func:`xai_lab.course.sandbox.run_notebook` does.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import stat
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

__all__ = ["Runner", "error_output", "main", "read_text", "clean_report", "merge_outputs"]


def error_output(ename: str, evalue: str):
    """An nbformat error output with a one-line traceback."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Runner:
    """Executes ``nb`` in place (see the module docstring); :meth:`run` returns the report."""

    def __init__(self, nb, out: Path, report: Path | None = None, timeout: int = 60, max_restarts: int = 5,
                 cwd: Path | None = None):
        self.nb, self.out, self.report_path = nb, Path(out), report
        self.timeout, self.max_restarts = timeout, max_restarts
        self.code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.report = {"restarts": 0, "events": [], "executed": []}
        self.replay: list[int] = []  # cells that ran without killing their kernel
        self.exited = False
        self.client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=False,
            shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd or Path.cwd())}},
            on_cell_executed=self._executed)

    # -------------------------------------------------------------------------------------------
    def _executed(self, cell, cell_index, execute_reply):
        """nbclient hook: ``exit()`` answers the cell normally, then the kernel goes away."""
        payload = (execute_reply or {}).get("content", {}).get("payload", [])
        if any(p.get("source") == "ask_exit" and not p.get("keepkernel") for p in payload):
            self.exited = True

    def _event(self, index: int, kind: str, message: str) -> None:
        self.report["events"].append({"cell": index, "kind": kind, "message": message})

    def _save(self) -> None:
        _write(self.out, nbformat.v4.nbjson.writes(self.nb))
        if self.report_path:
            _write(Path(self.report_path), json.dumps(self.report, indent=1))

    def _run_cell(self, cell, index: int) -> tuple[str, str] | None:
        """Execute one cell; ``(ename, evalue)`` if it cost the kernel, else None."""
        self.exited = False
        try:
            self.client.execute_cell(cell, index)
        except DeadKernelError:
            return "KernelDied", "the kernel died while running this cell (exit, crash or kill)"
        except CellTimeoutError:
            return "CellTimeout", f"this cell ran longer than {self.timeout} s and was stopped"
        if self.exited:
            return "KernelExited", "this cell ended the kernel (exit() or quit())"
        return None

    def _replay(self) -> bool:
        """Re-run the cells before the current one on a fresh kernel; False if one of them faults
        (it is then left out of later replays)."""
        for index in list(self.replay):
            fault = self._run_cell(copy.deepcopy(self.nb.cells[index]), index)
            if fault:
                self.replay.remove(index)
                self._event(index, fault[0], f"while re-running it after a restart: {fault[1]}")
                return False
        if hasattr(self.client, "_display_id_map"):  # display ids of the old kernel are gone
            self.client._display_id_map = {}
        return True

    def _not_run(self, positions, why: str) -> None:
        for pos in positions:
            index = self.code[pos]
            cell = self.nb.cells[index]
            cell.setdefault("outputs", []).append(error_output("NotRun", f"not run: {why}"))
            self.report["executed"].append(index)
        if positions:
            self._event(self.code[positions[0]], "not run", why)

    def run(self) -> dict:
        pos, first = 0, True
        while pos < len(self.code):
            if not first:
                if self.report["restarts"] >= self.max_restarts:
                    self._not_run(range(pos, len(self.code)),
                                  f"the kernel was restarted {self.max_restarts} times")
                    break
                self.report["restarts"] += 1
            first = False
            try:
                with self.client.setup_kernel():
                    if not self._replay():
                        continue
                    while pos < len(self.code):
                        index = self.code[pos]
                        fault = self._run_cell(self.nb.cells[index], index)
                        pos += 1
                        self.report["executed"].append(index)
                        if fault:
                            self.nb.cells[index].setdefault("outputs", []).append(error_output(*fault))
                            self._event(index, fault[0], fault[1])
                            self._save()
                            break
                        self.replay.append(index)
                        self._save()
            except Exception as e:  # the kernel did not start, or its connection broke
                self._event(self.code[min(pos, len(self.code) - 1)], "kernel failed", f"{type(e).__name__}: {e}"[:300])
                self.client.km = self.client.kc = None
        self._save()
        return self.report


# ------------------------------------------------------------------------------------------------
# outside the sandbox: reading back what it wrote (untrusted)
# ------------------------------------------------------------------------------------------------
def read_text(path: Path, max_bytes: int) -> str | None:
    """The text of a file the sandbox wrote, or None: no symlinks, no special files, size bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = f.read(max_bytes + 1)
    return data.decode("utf-8", errors="replace") if len(data) <= max_bytes else None


def clean_report(raw, n_cells: int) -> dict:
    """Only the expected keys and types of the runner's report."""
    raw = raw if isinstance(raw, dict) else {}
    cell = lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_cells  # noqa: E731
    text = lambda v: v[:300] if isinstance(v, str) else ""  # noqa: E731
    events = [{"cell": e["cell"], "kind": text(e.get("kind"))[:40], "message": text(e.get("message"))}
              for e in (raw.get("events") or [])[:200] if isinstance(e, dict) and cell(e.get("cell"))]
    restarts = raw.get("restarts")
    executed = raw.get("executed") if isinstance(raw.get("executed"), list) else []
    return {"restarts": restarts if type(restarts) is int and 0 <= restarts <= 1000 else 0, "events": events,
            "executed": sorted({i for i in executed[:n_cells * 2] if cell(i)})}


def merge_outputs(nb, text: str | None) -> bool:
    """Copy the outputs of the notebook ``text`` into ``nb`` (sources and metadata stay the input's);
    False if ``text`` is not a valid notebook with the same cells."""
    try:
        out = nbformat.reads(text, as_version=4)
        nbformat.validate(out)
    except Exception:
        return False
    if len(out.cells) != len(nb.cells) or any(
            (a.cell_type, a.source) != (b.cell_type, b.source) for a, b in zip(nb.cells, out.cells)):
        return False
    for a, b in zip(nb.cells, out.cells):
        if a.cell_type == "code":
            a.outputs, a.execution_count = b.outputs, b.execution_count
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xai_lab.course.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--timeout", type=int, default=60, help="seconds per cell (default 60)")
    parser.add_argument("--max-restarts", type=int, default=5, help="kernel restarts at most (default 5)")
    parser.add_argument("--report", type=Path, default=None, help="JSON report (default: OUT with .json)")
    args = parser.parse_args(argv)
    nb = nbformat.read(args.input, as_version=4)
    report = args.report or args.output.with_suffix(".json")
    result = Runner(nb, args.output, report, args.timeout, args.max_restarts).run()
    print(f"{len(result['executed'])} cells, {result['restarts']} restarts, {len(result['events'])} events",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
