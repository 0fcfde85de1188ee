"""The student's kernel runs where it can do no harm: a bubblewrap sandbox, with the library's own
solution of the assignment's exercises taken out.

:func:`run_notebook` executes a submission with :mod:`xai_lab.course.runner` inside ``bwrap``
(:class:`Sandbox` builds the command line). What the sandbox guarantees, for everything the
student's code starts (the kernel, its subprocesses, ``multiprocessing`` workers):

- no network (own network namespace: only a loopback of its own, the host's ports unreachable);
- the course root (``references/``, ``solutions/``, ``gradebook.db``, ``submitted/``,
  ``autograded/``), ``$XAI_LAB_REFERENCES`` and the other notebooks' scratch folders hidden behind
  empty read-only folders; the rest of the file system read-only; one private writable scratch
  folder (the working directory and ``$HOME``) and a private ``/tmp``; no host environment
  variables except ``LANG``/``LC_*``; no capabilities, own PID/IPC/UTS namespaces (host processes
  invisible), killed with the grader;
- an address-space limit per process (a 30 GB tensor fails in its cell), a time limit per cell
  (runner) and per notebook (a process group killed from outside);
- the library's implementation of each exercise of the assignment is *not there*:
  :func:`stripped_package` replaces its functions and classes by stubs raising
  :class:`NotAvailable` in a copy of the package mounted over the real one, so a subprocess,
  ``inspect.getsource`` + ``exec`` or a copied code object finds nothing to run. Shared plumbing
  that the rest of the public API needs stays (see ``_plan``; listed in the copy's ``.stripped``).

What it does not guarantee: a student can still retype code they have read elsewhere; the code in
the kernel controls everything the kernel reports (outputs, the runner's notebook and report in
the scratch folder), so those are data to judge outside, never trusted; other copies of the
package elsewhere on the machine stay readable unless listed in ``hide``; disk use of the scratch
folder is bounded per file (``file_size``), not in total; the number of processes is not limited.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .runner import clean_report, error_output, merge_outputs, read_text
from .stubs import NotAvailable, package_dir, stripped_package, unavailable

__all__ = ["NotAvailable", "unavailable", "stripped_package", "Sandbox", "available", "run_notebook", "default_hidden"]

GiB = 2 ** 30
INSIDE = Path("/tmp/work")  # the scratch folder, as the sandbox sees it


def default_hidden() -> list[Path]:
    """The repository root (unless it is the interpreter's own folder: a non-editable install) and
    ``$XAI_LAB_REFERENCES``."""
    from .layout import REPO

    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    out = [] if any(p == REPO or p in REPO.parents for p in prefixes) else [REPO]
    if os.environ.get("XAI_LAB_REFERENCES"):
        out.append(Path(os.environ["XAI_LAB_REFERENCES"]))
    return out


def _inside(path: Path, folders) -> bool:
    return any(path == f or f in path.parents for f in folders)


@dataclass
class Sandbox:
    """Limits and hidden folders of the sandbox; :meth:`command` is the ``bwrap`` command line."""

    memory: int = 8 * GiB  # address space per process (torch maps large libraries: 2 GiB is too little)
    cell_timeout: int = 60
    total_timeout: int = 1800
    threads: int = 1
    hide: list[Path] = field(default_factory=default_hidden)
    file_size: int = 1 * GiB  # largest file a process may write
    tmp_size: int = 1 * GiB  # the private /tmp and /dev/shm (memory-backed)

    def fields(self) -> dict:
        """The limits as plain data (to send to another process or a Dask worker)."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "hide": [str(h) for h in self.hide]}

    def command(self, argv: list[str], scratch: Path, package: Path) -> list[str]:
        """``bwrap ... prlimit ... argv``: ``argv`` runs in ``scratch`` (seen as /tmp/work) with the
        stripped ``package`` mounted over the installed one; the folder holding ``scratch`` (where
        the other notebooks of the run have theirs) is hidden like ``hide``."""
        hide = sorted({Path(h).resolve() for h in [*self.hide, Path(scratch).parent] if Path(h).exists()})
        keep = sorted({Path(p).resolve() for p in (sys.prefix, sys.base_prefix, Path(sys.executable).resolve().parent)})
        keep = [k for k in keep if _inside(k, hide) and not _inside(k, [o for o in keep if o != k])]
        cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(self.tmp_size), "--tmpfs", "/tmp", "--size", str(self.tmp_size), "--tmpfs", "/dev/shm"]
        for h in hide:  # the course root: an empty folder, then what must stay visible inside it
            cmd += ["--size", str(2 ** 20), "--tmpfs", str(h)] if h.is_dir() else ["--ro-bind", "/dev/null", str(h)]
        for k in keep:
            cmd += ["--ro-bind", str(k), str(k)]
        for h in hide:  # hidden folders inside a folder kept visible (a references folder in the venv)
            if _inside(h, keep) and h.is_dir():
                cmd += ["--size", str(2 ** 20), "--tmpfs", str(h)]
        cmd += ["--ro-bind", str(Path(package).resolve()), str(package_dir())]
        cmd += [a for h in hide if h.is_dir() for a in ("--remount-ro", str(h))]
        cmd += ["--bind", str(Path(scratch).resolve()), str(INSIDE), "--chdir", str(INSIDE),
                "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
        env = {"HOME": INSIDE, "JUPYTER_RUNTIME_DIR": INSIDE / ".jupyter/runtime", "IPYTHONDIR": INSIDE / ".ipython",
               "MPLCONFIGDIR": INSIDE / ".config/matplotlib", "PYTHONDONTWRITEBYTECODE": 1, "JUPYTER_PLATFORM_DIRS": 1,
               "XAI_LAB_GRADING": 1, "XAI_LAB_THREADS": self.threads, "OMP_NUM_THREADS": self.threads, "MKL_NUM_THREADS": self.threads,
               "PATH": os.pathsep.join([str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])}
        env.update({k: v for k, v in os.environ.items() if k == "LANG" or k.startswith("LC_")})
        for k, v in env.items():
            cmd += ["--setenv", k, str(v)]
        limits = [f"--as={self.memory}", f"--fsize={self.file_size}", "--core=0"]
        return cmd + ["--", shutil.which("prlimit") or "prlimit", *limits, "--", *argv]


@functools.lru_cache(maxsize=1)
def available() -> str | None:
    """None if bubblewrap works on this machine, else what failed and how to fix it."""
    if not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap`"
    if not shutil.which("prlimit"):
        return "prlimit is not installed: `apt-get install util-linux`"
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
           "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--", "true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not run: {e}"
    if proc.returncode != 0:
        return (f"bwrap cannot create a sandbox here ({proc.stderr.strip() or proc.returncode}): it needs user "
                "namespaces (`sysctl kernel.unprivileged_userns_clone=1`, `user.max_user_namespaces` > 0, and on "
                "Ubuntu `kernel.apparmor_restrict_unprivileged_userns=0`), or run the grader as root")
    return None


def run_notebook(nb, assignment: str, sandbox: Sandbox, package: Path, workdir: Path,
                 max_bytes: int = 64 * 2 ** 20) -> tuple:
    """Execute ``nb`` in ``sandbox`` with the stripped ``package`` (of ``assignment``); return the
    executed notebook (a copy of ``nb`` with the sandbox's outputs) and the report: ``status``
    (``ok``, ``timeout``, ``runner failed``, ``invalid output``), ``restarts``, ``events``, ``seconds``, ``returncode``,
    ``log`` (the end of the runner's output when it failed). Cells the runner did not reach get a
    ``NotRun`` error output; if the sandbox's notebook is missing, invalid, larger than ``max_bytes``
    or has other cells than ``nb``, every code cell gets one."""
    result = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in result.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    Path(workdir).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{assignment}-", dir=workdir))
    try:
        nbformat.write(result, scratch / "in.ipynb")
        argv = [sys.executable, "-m", "xai_lab.course.runner", "in.ipynb", "out.ipynb", "--timeout",
                str(sandbox.cell_timeout), "--max-restarts", "5", "--report", "report.json"]
        log = scratch / "runner.log"
        start = time.perf_counter()
        with open(log, "wb") as f:
            proc = subprocess.Popen(sandbox.command(argv, scratch, package), stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=sandbox.total_timeout)
                status = "ok"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                status = "timeout"
        seconds = time.perf_counter() - start
        codes = [i for i, c in enumerate(result.cells) if c.cell_type == "code"]
        try:
            raw = json.loads(read_text(scratch / "report.json", 2 ** 20) or "{}")
        except ValueError:
            raw = {}
        report = clean_report(raw, len(result.cells))
        if status == "ok" and proc.returncode:
            status = "runner failed"
        why = {"ok": "the runner stopped before this cell",
               "timeout": f"the notebook ran over its {sandbox.total_timeout} s",
               "runner failed": f"the runner stopped (exit status {proc.returncode}) before this cell"}[status]
        if not merge_outputs(result, read_text(scratch / "out.ipynb", max_bytes)):
            report["executed"] = []
            if status == "ok" or (scratch / "out.ipynb").exists():
                status, why = "invalid output", "the notebook's outputs could not be read back from the sandbox"
        for i in codes:
            if i not in report["executed"]:
                result.cells[i].outputs.append(error_output("NotRun", f"not run: {why}"))
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 2000))
            tail = f.read().decode(errors="replace") if proc.returncode or status != "ok" else ""
        report.update(status=status, seconds=round(seconds, 2), returncode=proc.returncode, log=tail)
        return result, report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
