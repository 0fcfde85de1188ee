"""The grading sandbox (xai_lab.course.sandbox) and the fault-tolerant runner (xai_lab.course.runner).

A few small notebooks run in the sandbox at the same time (one module fixture), each cell cheap;
the tests read what the cells printed."""
import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from xai_lab.course import runner, sandbox
from xai_lab.course.layout import REPO

pytestmark = pytest.mark.sandbox

OUTCOME = """
def outcome(f):
    try:
        f()
        return "ran"
    except BaseException as e:
        return type(e).__name__
"""


def notebook(*sources):
    return new_notebook(cells=[new_code_cell(textwrap.dedent(s)) for s in sources])


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def errors(cell) -> list:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


def values(nb) -> dict:
    """``key=value`` lines printed anywhere in the notebook."""
    return dict(line.split("=", 1) for c in nb.cells for line in stdout(c).splitlines() if "=" in line)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("stripped")
    return {a: sandbox.stripped_package(a, root / a) for a in ("00_foundations", "02_explanation")}


@pytest.fixture(scope="module")
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(packages, listener, tmp_path_factory):
    """Every sandboxed notebook of this file, run side by side: ``{name: (notebook, report)}``."""
    if sandbox.available():
        pytest.fail(sandbox.available())
    work = tmp_path_factory.mktemp("work")
    probes = notebook(
        OUTCOME, f"""
        import socket, torch
        def read(p):
            return open(p, "rb").read()
        def connect(host, port):
            with socket.create_connection((host, port), timeout=3):
                pass
        def write(p):
            with open(p, "w") as f:
                f.write("x")
        print("references=" + outcome(lambda: read("{REPO}/references/00_foundations.pt")))
        print("solutions=" + outcome(lambda: __import__("os").listdir("{REPO}/solutions")))
        print("gradebook=" + outcome(lambda: read("{REPO}/gradebook.db")))
        print("internet=" + outcome(lambda: connect("1.1.1.1", 80)))
        print("host_port=" + outcome(lambda: connect("127.0.0.1", {listener})))
        print("write_repo=" + outcome(lambda: write("{REPO}/sandbox-probe.txt")))
        print("write_root=" + outcome(lambda: write("/sandbox-probe.txt")))
        print("write_cwd=" + outcome(lambda: write("probe.txt")))
        """,
        """
        import inspect, multiprocessing, subprocess, sys
        from xai_lab import analysis, data, models
        pred, labels = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
        print("accuracy=" + outcome(lambda: analysis.accuracy(pred, labels)))
        code = "import torch; from xai_lab import analysis; analysis.accuracy(torch.tensor([0]), torch.tensor([0]))"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        print("subprocess=" + ("NotAvailable" if "NotAvailable" in r.stderr else r.stderr[-200:] or "ran"))
        ns = dict(vars(analysis))
        exec(inspect.getsource(analysis.accuracy), ns)
        print("getsource=" + outcome(lambda: ns["accuracy"](pred, labels)))
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            print("spawn=" + outcome(lambda: pool.apply(analysis.accuracy, (pred, labels))))
        flowers = data.flowers(4)
        print("predict=" + str(tuple(models.predict(models.load("single"), flowers.images).shape)))
        """,
        "big = torch.empty(30 * 2 ** 30, dtype=torch.uint8)",
        "print('after=big')")
    explanation = notebook(
        OUTCOME, """
        from xai_lab import data, explain, models
        model, flowers = models.load("single"), data.flowers(2)
        print("grad_cam=" + outcome(lambda: explain.grad_cam(model, flowers.images, flowers.labels)))
        ig = explain.integrated_gradients(model, flowers.images, flowers.labels, steps=2)
        print("integrated_gradients=" + str(tuple(ig.shape)))
        print("superpixels=" + outcome(lambda: explain.superpixels(flowers.images)))
        """)
    faults = notebook("x = 41", "exit()", "x += 1", "import os; os._exit(3)", "import os; os.kill(os.getpid(), 9)",
                      "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                      "print('alive', x)")
    overrun = notebook("print('first')", "import time; time.sleep(120)", "print('never')")
    killer = notebook("print('before')", "import os; os.kill(os.getppid(), 9)", "print('after')")
    jobs = {"probes": (probes, "00_foundations", sandbox.Sandbox(cell_timeout=40, total_timeout=120)),
            "explanation": (explanation, "02_explanation", sandbox.Sandbox(cell_timeout=40, total_timeout=120)),
            "faults": (faults, "00_foundations", sandbox.Sandbox(cell_timeout=5, total_timeout=120)),
            "overrun": (overrun, "00_foundations", sandbox.Sandbox(cell_timeout=60, total_timeout=25)),
            "killer": (killer, "00_foundations", sandbox.Sandbox(cell_timeout=20, total_timeout=60))}
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {k: pool.submit(sandbox.run_notebook, nb, a, box, packages[a], work / k)
                   for k, (nb, a, box) in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


def test_available():
    assert sandbox.available() is None, sandbox.available()


def test_course_root_hidden_and_read_only(runs):
    nb, report = runs["probes"]
    got = values(nb)
    assert report["status"] == "ok", report
    assert got["references"] == got["solutions"] == got["gradebook"] == "FileNotFoundError", got
    assert got["write_repo"] == got["write_root"] == "OSError", got  # read-only file system
    assert got["write_cwd"] == "ran"
    assert not (REPO / "sandbox-probe.txt").exists() and not Path("/sandbox-probe.txt").exists()


def test_no_network(runs):
    got = values(runs["probes"][0])
    assert got["internet"] != "ran" and got["host_port"] != "ran", got


def test_solutions_are_not_there(runs):
    got = values(runs["probes"][0])
    assert got["accuracy"] == got["subprocess"] == got["getsource"] == got["spawn"] == "NotAvailable", got
    assert got["predict"] == "(4,)", got


def test_memory_limit_costs_one_cell(runs):
    nb, _ = runs["probes"]
    assert errors(nb.cells[3]) == ["RuntimeError"], nb.cells[3].outputs  # torch: can't allocate memory
    assert values(nb)["after"] == "big"


def test_explanation_keeps_the_shared_plumbing(runs):
    nb, report = runs["explanation"]
    got = values(nb)
    assert got["grad_cam"] == "NotAvailable", (got, report)
    assert got["integrated_gradients"] == "(2, 64, 64)" and got["superpixels"] == "ran", got


def test_faults_cost_only_their_cell(runs):
    nb, report = runs["faults"]
    assert stdout(nb.cells[-1]) == "alive 42\n", (nb.cells[-1].outputs, report)
    assert [errors(c) for c in nb.cells] == [[], ["KernelExited"], [], ["KernelDied"], ["KernelDied"],
                                             ["CellTimeout"], []]
    assert [(e["cell"], e["kind"]) for e in report["events"]] == [
        (1, "KernelExited"), (3, "KernelDied"), (4, "KernelDied"), (5, "CellTimeout")]
    assert report["restarts"] == 4 and report["status"] == "ok"


def test_total_timeout_kills_the_notebook(runs):
    nb, report = runs["overrun"]
    assert report["status"] == "timeout" and report["seconds"] < 50, report
    assert stdout(nb.cells[0]) == "first\n"
    for cell in nb.cells[1:]:
        assert [o.evalue for o in cell.outputs] == ["not run: the notebook ran over its 25 s"]


def test_killed_runner_keeps_the_cells_done(runs):
    nb, report = runs["killer"]
    assert stdout(nb.cells[0]) == "before\n" and report["returncode"] != 0, report
    assert errors(nb.cells[2]) == ["NotRun"]


def test_output_read_back_defensively(tmp_path):
    nb = notebook("print(1)")
    (tmp_path / "secret").write_text(nbformat.writes(nb))
    os.symlink(tmp_path / "secret", tmp_path / "out.ipynb")
    assert runner.read_text(tmp_path / "out.ipynb", 10 ** 6) is None  # no symlinks followed
    assert runner.read_text(tmp_path / "secret", 10) is None  # too large
    assert not runner.merge_outputs(nb, '{"cells": "nonsense"}')
    assert not runner.merge_outputs(nb, nbformat.writes(notebook("print(2)")))  # other cells
    report = runner.clean_report({"restarts": "9", "events": [{"cell": 0, "kind": 3, "evil": 1}, {"cell": 7}],
                                    "executed": [0, True, 5, "x"], "extra": 1}, 1)
    assert report == {"restarts": 0, "events": [{"cell": 0, "kind": "", "message": ""}], "executed": [0]}


def test_command_line(tmp_path, monkeypatch):
    hidden, scratch = tmp_path / "course", tmp_path / "work" / "one"
    hidden.mkdir()
    scratch.mkdir(parents=True)
    monkeypatch.setenv("XAI_LAB_REFERENCES", str(hidden))
    assert sandbox.default_hidden() == [REPO, hidden]
    cmd = sandbox.Sandbox(memory=2 ** 33, threads=2).command(["true"], scratch, tmp_path)
    assert cmd[0] == "bwrap" and cmd[-1] == "true"
    text = " ".join(cmd)
    for part in ["--ro-bind / /", f"--tmpfs {hidden.resolve()}", f"--remount-ro {hidden.resolve()}",
                 "--unshare-all", "--die-with-parent", "--cap-drop ALL", "--clearenv", "--as=8589934592",
                 "--setenv OMP_NUM_THREADS 2", f"--ro-bind {tmp_path.resolve()} {sandbox.package_dir()}",
                 f"--tmpfs {REPO}", f"--tmpfs {scratch.parent.resolve()}", f"--bind {scratch.resolve()} /tmp/work"]:
        assert part in text, part
    assert text.index(f"--tmpfs {hidden.resolve()}") < text.index(f"--ro-bind {tmp_path.resolve()} ")


def test_stripped_package_without_sandbox(packages):
    import inspect

    from xai_lab import analysis, models

    copy = packages["00_foundations"]
    assert (copy / "weights" / "manifest.json").is_file() and any((copy / "weights").glob("*.pt"))
    assert not list(copy.rglob("__pycache__"))
    text = "\n".join(p.read_text() for p in copy.rglob("*.py"))
    body = inspect.getsource(analysis.accuracy).splitlines()[-1].strip()
    assert body.startswith("return") and body not in text  # the solution's code is gone
    assert inspect.getsource(models.predict).splitlines()[-1].strip() in text  # the rest is there
    code = """
        import torch, xai_lab
        from xai_lab import analysis, models, hooks
        assert xai_lab.__file__.startswith(sys.argv[1]), xai_lab.__file__
        for f in (lambda: analysis.accuracy(torch.tensor([1]), torch.tensor([1])), lambda: models.evaluate(None, None),
                  lambda: hooks.capture(torch.nn.Linear(1, 1), ["x"]).__enter__()):
            try:
                f()
                raise SystemExit("a stub ran")
            except RuntimeError as e:
                assert type(e).__name__ == "NotAvailable", e
        print(analysis.accuracy.__doc__)
        print(tuple(models.predict(models.load("single"), torch.zeros(2, 3, 64, 64)).shape))
    """
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    r = subprocess.run([sys.executable, "-c", "import sys\n" + textwrap.dedent(code), str(copy)],
                       capture_output=True, text=True, env=env, cwd=copy.parent)
    assert r.returncode == 0, r.stderr
    assert "xai_lab.analysis.accuracy is not available while your notebook is graded" in r.stdout
    assert r.stdout.strip().endswith("(2,)")


def test_stripped_classes_stay_classes(packages):
    code = """
        import importlib
        lrp = importlib.import_module("xai_lab.explain.lrp")
        assert isinstance(lrp.LRPLayer, type) and not isinstance(object(), lrp.LRPLayer)
        try:
            lrp.LRPLayer()
        except RuntimeError as e:
            assert type(e).__name__ == "NotAvailable"
        else:
            raise SystemExit("LRPLayer() worked")
        print(open(lrp.__file__.replace("explain/lrp.py", ".stripped")).read())
    """
    copy = packages["02_explanation"]
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(copy.parent)}, cwd=copy.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("stripped for 02_explanation")
    assert sandbox.stripped_package("02_explanation", copy.parent) == copy  # built once
