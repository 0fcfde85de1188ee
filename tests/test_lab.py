"""`make lab` serves the course: JupyterLab starts on workspace/ (the student's copy of course/) and lists the assignments."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("rt")),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_ARGS=--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token=test "
                              "--ServerApp.open_browser=False --LabApp.news_url=None --ServerApp.port_retries=0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token=test", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"make lab exited: {proc.stdout.read()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_lab_serves_the_course(lab):  # workspace/ holds every assignment of course/
    page = urllib.request.urlopen(f"{lab}/lab?token=test", timeout=10).read().decode()
    assert "JupyterLab" in page
    listing = json.load(urllib.request.urlopen(f"{lab}/api/contents?token=test", timeout=10))
    names = {item["name"] for item in listing["content"]}
    assert {p.name for p in (REPO / "course").iterdir() if p.is_dir()} <= names
    nb = json.load(urllib.request.urlopen(f"{lab}/api/contents/00_foundations/00_foundations.ipynb?token=test", timeout=10))
    assert nb["type"] == "notebook" and nb["content"]["cells"]
