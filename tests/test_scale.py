"""Grading beyond one SQLite file and one machine: a PostgreSQL gradebook through nbgrader's db_url
($XAI_LAB_DB_URL), against a real server this test starts (Debian's postgresql package, installed
by `make sandbox-tools`) on a Unix socket of its own; and the submissions graded by the workers of a
Dask distributed cluster (`--scheduler`). Both in one grading run."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from xai_lab import course

pytestmark = pytest.mark.pipeline
BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def _as_postgres(*cmd):
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)], check=True, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def postgres():
    if not BIN or not shutil.which("runuser"):
        pytest.fail("PostgreSQL is not installed: run `make sandbox-tools` (apt-get install postgresql)")
    bindir = BIN[-1].parent
    base = Path(tempfile.mkdtemp(prefix="xai-pg-", dir="/tmp"))
    shutil.chown(base, "postgres")
    data, sock = base / "data", base / "sock"
    _as_postgres("mkdir", sock)
    _as_postgres(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
    _as_postgres(bindir / "pg_ctl", "-D", data, "-w", "-l", base / "log", "-o",
                 f"-k {sock} -c listen_addresses='' -p 5499", "start")
    try:
        _as_postgres(bindir / "createdb", "-h", sock, "-p", "5499", "xai")
        yield f"postgresql+psycopg://postgres@/xai?host={sock}&port=5499"
    finally:
        _as_postgres(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_autograde_on_a_dask_cluster_into_a_postgresql_gradebook(postgres, tmp_path):
    """One run, both ways of scaling (a notebook graded once, ~100 s, instead of twice): ``--scheduler``
    sends the submissions to the workers of a Dask distributed cluster (here one worker process on this
    machine's loopback) and ``$XAI_LAB_DB_URL`` puts the grades into PostgreSQL; the grade is full
    marks, as in a local run into SQLite (tests/test_pipeline.py)."""
    distributed = pytest.importorskip("distributed")
    old = os.environ.get("XAI_LAB_DB_URL")
    os.environ["XAI_LAB_DB_URL"] = postgres
    try:
        root = course.scratch_course(tmp_path / "course")
        course.make_submission(root, "00_foundations", "scale-student", "solution")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            tables = course.autograde(root, ["00_foundations"], scheduler=cluster.scheduler_address, show=False)
    finally:
        os.environ.pop("XAI_LAB_DB_URL") if old is None else os.environ.__setitem__("XAI_LAB_DB_URL", old)
    row = tables["00_foundations"]["scale-student"]
    auto = [g for g, manual in course.graded_cells(root, "00_foundations").items() if not manual]
    assert auto and all(row[g][0] == row[g][1] > 0 for g in auto), row
    assert not (root / "gradebook.db").exists(), "the grades went to SQLite, not to PostgreSQL"
    out = subprocess.run(["runuser", "-u", "postgres", "--", "psql", postgres.replace("+psycopg", ""), "-tAc",
                          "select count(*) from grade"], capture_output=True, text=True)
    assert out.returncode == 0 and int(out.stdout) > 0, out.stderr
