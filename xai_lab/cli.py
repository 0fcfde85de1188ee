"""The ``xai-lab`` command: the instructor's tools, one subcommand per Makefile target
(release, references, autograde, feedback, demo, weights, figures, bench) and ``table``.

``xai-lab --help`` lists them, ``xai-lab SUBCOMMAND --help`` describes one and its options. Usage
errors (an unknown assignment, model or benchmark) exit with status 2 and a message. The heavy
modules (torch, nbgrader) are imported only when a subcommand runs, so ``--help`` is quick.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_root() -> Path:
    """The course directory: the current folder if it is one (it has ``solutions/``), else the
    repository this package was installed from in development mode."""
    here = Path.cwd()
    return here if (here / "solutions").is_dir() or not (REPO / "solutions").is_dir() else REPO
COURSE_LAYOUT = ("A course directory (--root) is laid out as its nbgrader_config.py says: solutions/ (source),\n"
                 "course/ (release), submitted/<student>/<id>/, autograded/, feedback/ and gradebook.db.")


# ------------------------------------------------------------------------------------------------
# the subcommands: each takes the parsed arguments and its own parser (for usage errors)
# ------------------------------------------------------------------------------------------------
def _course_ids(args, parser) -> list[str]:
    """The assignment ids given (all of the course if none), checked against solutions/."""
    from .course import assignments

    if not (args.root / "solutions").is_dir():
        parser.error(f"{args.root} is not a course directory: it has no solutions/ folder")
    known = assignments(args.root)
    unknown = [a for a in args.assignments if a not in known]
    if unknown:
        parser.error(f"unknown assignment {', '.join(map(repr, unknown))}; "
                     f"the assignments of {args.root / 'solutions'} are: {', '.join(known) or 'none'}")
    return args.assignments or known


def run_release(args, parser):
    from .course import release
    release(args.root, _course_ids(args, parser))


def run_references(args, parser):
    from .course import references
    references(args.root, _course_ids(args, parser), timeout=args.timeout)


def _limits(args, parser):
    from .course.sandbox import Sandbox

    for name in ("jobs", "timeout", "memory"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return Sandbox(memory=args.memory * 2**30, cell_timeout=args.timeout)


def run_autograde(args, parser):
    from .course import autograde
    autograde(args.root, _course_ids(args, parser), jobs=args.jobs, scheduler=args.scheduler,
              limits=_limits(args, parser))


def run_feedback(args, parser):
    from .course import feedback
    feedback(args.root, _course_ids(args, parser))


def run_demo(args, parser):
    from .course import demo
    demo(args.root, _course_ids(args, parser), jobs=args.jobs)


def run_table(args, parser):
    from .course import show_scores
    show_scores(args.root, _course_ids(args, parser))


def run_workspace(args, parser):
    from .course.workspace import sync_workspace

    try:
        added = sync_workspace(args.root, args.dest)
    except (FileNotFoundError, NotADirectoryError) as e:
        parser.error(str(e))
    dest = args.dest or args.root / "workspace"
    print("\n".join(f"workspace: added {name} -> {dest / name}" for name in added)
          or f"workspace: {dest} is up to date")


def run_check(args, parser):
    from .course import selfcheck

    try:
        results = selfcheck.check(args.assignment, args.notebooks, root=args.root, jobs=args.jobs,
                                  limits=_limits(args, parser), feedback=args.feedback)
    except selfcheck.CheckError as e:
        parser.error(str(e))
    except RuntimeError as e:
        print(f"xai-lab check: {e}", file=sys.stderr)
        return 1
    print("\n\n".join(selfcheck.format_result(r) for r in results))
    return 0


def run_weights(args, parser):
    from . import models

    unknown = [n for n in args.names if n not in models.SPECS]
    if unknown:
        parser.error(f"unknown model {', '.join(map(repr, unknown))}; choose from {', '.join(models.SPECS)}")
    models.main(args.names or list(models.SPECS))


def run_figures(args, parser):
    from .course import report
    report.figures()


def _benchmarks(root: Path) -> dict[str, Path]:
    """``{name: benchmarks/bench_<name>.py}`` of the repository ``root``."""
    return {p.stem.removeprefix("bench_"): p for p in sorted((root / "benchmarks").glob("bench_*.py"))}


def run_bench(args, parser):
    scripts = _benchmarks(args.root)
    known = ["models", *scripts]
    unknown = [w for w in args.what if w not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    what = args.what or known
    if "models" in what:
        from .course import report
        report.print_models()
    failed = []
    for name in what:
        if name != "models":
            print(f"== {scripts[name].relative_to(args.root)}", flush=True)
            if subprocess.run([sys.executable, str(scripts[name])], cwd=args.root).returncode != 0:
                failed.append(name)
    if failed:
        print(f"xai-lab bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------
# the parser
# ------------------------------------------------------------------------------------------------
def _add(sub, name: str, run, summary: str, details: str = "", ids: bool = False):
    """A subcommand: ``summary`` is its line in ``xai-lab --help`` (written into the epilog:
    argparse's own listing wraps long names) and opens its description; with ``ids`` it takes
    assignment ids and ``--root``."""
    sub.summaries[name] = summary
    p = sub.add_parser(name, description=f"{summary}.\n\n{details}".strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run, parser=p)
    if ids:
        p.add_argument("assignments", nargs="*", metavar="ID",
                       help="assignment ids, e.g. 00_foundations (default: every assignment in solutions/)")
        p.add_argument("--root", type=Path, default=default_root(),
                       help="the course directory (default: the current folder if it has solutions/, else the development checkout)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xai-lab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Instructor tools of the xai-lab course (the Makefile's targets call them).")
    sub = parser.add_subparsers(metavar="COMMAND", required=True, help="one of the commands below")
    sub.summaries = {}  # name -> its line in `xai-lab --help`

    _add(sub, "release", run_release, "Regenerate course/ from solutions/ (commit the result)",
         "Runs nbgrader generate_assignment: course/<id>/ from solutions/<id>/, without solutions, hidden\n"
         "tests, mark schemes and outputs; registers the assignment in the gradebook.\n"
         + COURSE_LAYOUT, ids=True)
    p = _add(sub, "references", run_references,
             "Record the hidden reference outputs from the solutions",
             "Executes solutions/<id>/<id>.ipynb with recording on: every grading.check(...) of its hidden tests\n"
             "stores its value in references/<id>.pt ($XAI_LAB_REFERENCES if set). Run it after any change to a\n"
             "solution notebook.", ids=True)
    p.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: 600)")
    p = _add(sub, "autograde", run_autograde,
             "Grade everything in submitted/ and print the scores",
             "Runs each submitted/<student>/<id>/ notebook in a sandbox (bubblewrap: no network, no references,\n"
             "solutions, gradebook or other students' files, the library's own implementation of the exercises\n"
             "replaced by stubs, memory and time limits), judges the recorded results against the references\n"
             "outside it, stores the grades with one nbgrader run, and prints points per exercise; '·' marks a\n"
             "manually graded question nobody has graded yet (grade those in formgrader). Notes on repaired or\n"
             "tampered notebooks and crashed kernels are printed and kept in autograded/<id>-report.json.\n"
             + COURSE_LAYOUT, ids=True)
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="notebooks graded at once on this machine, one thread each (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="grade on the workers of a Dask distributed cluster instead, e.g. tcp://10.0.0.5:8786 "
                        "(workers need xai-lab installed and the course folder at the same path)")
    p.add_argument("--timeout", type=int, default=60,
                   help="seconds a cell may run; a cell over it (or one that kills its kernel) scores 0 and "
                        "the kernel restarts for the rest (default: 60)")
    p.add_argument("--memory", type=int, default=8, help="GiB of address space per kernel (default: 8)")
    _add(sub, "feedback", run_feedback, "Write feedback/ HTML for every graded submission",
         "Writes feedback/<student>/<id>/<id>.html: the graded notebook without the hidden tests, and errors as\n"
         "'Name: message' only. Run autograde first.", ids=True)
    p = _add(sub, "demo", run_demo, "Grade three demo submissions per assignment",
         "Writes submitted/demo-solution (the solution), demo-blank (the release untouched) and demo-broken\n"
         "(one realistic bug, from xai_lab.course.DEMO_BUGS) for each assignment, autogrades them and prints\n"
         "the score tables.", ids=True)
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="notebooks graded at once (default: all cores)")
    _add(sub, "table", run_table, "Print the score table from the gradebook, grading nothing", ids=True)
    p = _add(sub, "workspace", run_workspace, "Add newly released assignments to a student's workspace/",
             "Copies each assignment folder of course/ that workspace/ does not have yet (all of them the first\n"
             "time). Nothing already in workspace/ is ever changed: a student's answers and files survive\n"
             "`make release` and updates of course/. `make lab` runs it, then opens JupyterLab on workspace/.")
    p.add_argument("--root", type=Path, default=default_root(),
                   help="the course directory, with course/ (default: the current folder if it has solutions/, else the development checkout)")
    p.add_argument("--dest", type=Path, default=None, help="the workspace folder (default: ROOT/workspace)")
    p = _add(sub, "check", run_check, "Self-check: grade your own notebook with the hidden tests",
             "Grades a notebook as the instructor's autograder would (sandbox, hidden tests, references), in a\n"
             "scratch course in a temporary folder (the instructor's gradebook and submitted/ are never touched),\n"
             "and prints the points per exercise and, for each exercise that lost points, what is wrong: the\n"
             "visible test's message or how the hidden result is off. Hidden test code and reference values are\n"
             "never shown. Exits 0 when it graded (whatever the score), 2 on a usage error, 1 if the sandbox\n"
             "cannot run. Needs the references (references/ or $XAI_LAB_REFERENCES).")
    p.add_argument("assignment", metavar="ID", help="the assignment, e.g. 02_explanation")
    p.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                   help="notebooks to grade, each on its own (default: workspace/ID/ID.ipynb if it exists, "
                        "else course/ID/ID.ipynb)")
    p.add_argument("--root", type=Path, default=default_root(),
                   help="the course directory (default: the current folder if it has solutions/, else the development checkout)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="notebooks graded at once (default: all cores)")
    p.add_argument("--timeout", type=int, default=60, help="seconds a cell may run (default: 60)")
    p.add_argument("--memory", type=int, default=8, help="GiB of address space per kernel (default: 8)")
    p.add_argument("--feedback", type=Path, metavar="DIR", default=None,
                   help="also write the HTML feedback of each notebook into DIR")
    p = _add(sub, "weights", run_weights, "Retrain the shipped models deterministically",
             "Trains each model on one thread with fixed seeds, with progress bars, and writes its weights and\n"
             "SHA-256 into xai_lab/weights/ (the same weights on every machine).")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="models to retrain, e.g. single or watermark (default: all of xai_lab.models.SPECS)")
    _add(sub, "figures", run_figures, "Redraw docs/flowers.png and docs/variants.png",
         "The README's sample flowers and variants, from fixed seeds.")
    p = _add(sub, "bench", run_bench, "Print model accuracies and run benchmarks/bench_*.py",
             "'models': data generation time and the test accuracy of every shipped model (with the watermark\n"
             "and bias effects); then each benchmarks/bench_<name>.py of the repository (a few minutes each).\n"
             "Exits 1 if a benchmark script fails.")
    p.add_argument("what", nargs="*", metavar="WHAT",
                   help="'models' and/or benchmark names, e.g. explain for benchmarks/bench_explain.py (default: all)")
    p.add_argument("--root", type=Path, default=default_root(), help="the repository with benchmarks/ (default: the current folder if it has solutions/, else the development checkout)")
    parser.epilog = ("commands:\n" + "\n".join(f"  {name:<12}{summary}" for name, summary in sub.summaries.items())
                     + "\n\n`xai-lab COMMAND --help` describes a command and its options.")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args, args.parser) or 0


if __name__ == "__main__":
    sys.exit(main())
