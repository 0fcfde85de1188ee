"""JupyterLab on localhost for tests/test_browser.py: a free port, a random token, a temporary root directory and
a temporary Jupyter configuration (so nothing of the user's settings or saved workspaces leaks in), its log kept,
and shut down with its kernels however the test ends."""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = REPO / "build" / "test-artifacts" / "browser"

# JupyterLab settings of the test (a temporary JUPYTER_CONFIG_DIR): every cell in the page (no windowing, so the
# explorers further down exist in the DOM without scrolling), and no news or update check (no internet).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def lab_backend() -> str:
    """The MPLBACKEND that `make lab` gives JupyterLab, read from the Makefile, so that the test runs the kernel
    exactly as a student's `make lab` does."""
    found = re.search(r"MPLBACKEND=(\S+)\s+\$\(VENV\)/bin/jupyter lab", (REPO / "Makefile").read_text())
    assert found, "the Makefile's `lab` target no longer sets MPLBACKEND for `jupyter lab`: update tests/browser_lab.py"
    return found.group(1)


def chromium_executable() -> str:
    """Debian's Chromium (`make browser-tools`); Playwright drives this executable and never downloads one."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("no `chromium` on PATH: run `make browser-tools` (as root it installs Debian's chromium; "
                            "otherwise: sudo apt-get install chromium fonts-liberation)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, sources: list[str]) -> None:
    """A notebook of code cells for the Python 3 kernel of this environment. Each cell is tagged
    `raises-exception`, so that an error in one does not stop Run All: the others still run and are tested."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s, metadata={"tags": ["raises-exception"]})
                                         for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)


class Lab:
    """A running JupyterLab: `root` (its root directory), `url(path)`, `api(path)` (its REST API, as JSON),
    `log()` (what it printed so far)."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log_path: Path):
        self.root, self.port, self.token, self.process, self.log_path = root, port, token, process, log_path

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else "(no log)"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"{}")

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode} before answering; "
                                   f"its log:\n{self.log()}")
            try:
                self.api("status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        raise TimeoutError(f"JupyterLab did not answer on port {self.port} within {timeout:.0f} s; its log:\n{self.log()}")

    def shutdown(self) -> None:
        """Ask the server to stop (it stops its kernels), then SIGTERM, then SIGKILL for anything left in its
        process group (the server and the kernels it started, nothing else)."""
        if self.process.poll() is None:
            try:
                self.api("shutdown", method="POST")
                self.process.wait(timeout=10)
            except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def jupyterlab(timeout: float = 60.0, args: tuple[str, ...] = (), settings: dict | None = None):
    """Start JupyterLab as `make lab` does (this environment's Python, the Makefile's MPLBACKEND, `--allow-root`
    as root), on localhost with a free port and a random token, in a temporary directory; yield a `Lab`; shut it
    down and delete the directory on the way out. Its log is copied to ARTEFACTS/jupyterlab.log. `args`: more
    options for `jupyter lab`; `settings`: the user settings of the temporary configuration (default SETTINGS)."""
    tmp = Path(tempfile.mkdtemp(prefix="xai-lab-browser-"))
    root, config = tmp / "root", tmp / "config"
    root.mkdir()
    for name, values in (SETTINGS if settings is None else settings).items():
        path = config / "lab" / "user-settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(24)
    env = dict(os.environ, MPLBACKEND=lab_backend(), JUPYTER_CONFIG_DIR=str(config),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", *args]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp / "jupyterlab.log"
    lab = None
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        lab = Lab(root, port, token, process, log_path)
        lab.wait_until_ready(timeout)
        yield lab
    finally:
        if lab is not None:
            lab.shutdown()
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        if log_path.exists():
            shutil.copyfile(log_path, ARTEFACTS / "jupyterlab.log")
        shutil.rmtree(tmp, ignore_errors=True)
