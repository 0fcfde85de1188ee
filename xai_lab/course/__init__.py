"""Instructor tooling around nbgrader: release, reference outputs, demo submissions, autograding.

Every function works on a course directory (``root``, default: the repository), laid out as
``nbgrader_config.py`` says: ``solutions/`` (source), ``course/`` (release), ``submitted/``,
``autograded/``, ``feedback/`` and ``gradebook.db``. The ``xai-lab`` command (``xai_lab.cli``)
calls them: ``xai-lab release | references | autograde | feedback | demo | table``.

Modules, in the order of the pipeline:

- ``layout``: the course directory (``REPO``, ``assignments``, ``notebook_path``) and the graded
  cells of a notebook (``graded_cells``, ``manual_cells``)
- ``nbgrader_tools``: running nbgrader (``nbgrader``, ``release``, ``scratch_course``,
  ``ensure_in_gradebook``) and recording the hidden reference outputs (``references``)
- ``submissions``: submissions built from the release (``make_submission``, ``solution_body``,
  ``SOLUTION_RE``) and the demo (``demo``, ``DEMO_BUGS``)
- ``prepare``, ``sandbox`` (with ``runner``), ``judge``, ``autograde``: grading a class, see
  ``autograde``'s docstring (the kernel computes in a sandbox, the grader judges)
- ``grades``: ``scores``, ``format_table``, ``show_scores``, ``feedback`` and the
  feedback preprocessor ``ShortTracebacks`` (named in ``nbgrader_config.py``)
- ``workspace``: a student's own copy of ``course/`` (``sync_workspace``: adds what was released since,
  changes nothing already there; ``make lab`` runs it through ``xai-lab workspace``)
- ``report``: measured figures of the shipped models and the README's sample figures (imports
  torch, so it is not imported here: ``from xai_lab.course import report``)
"""
from .autograde import autograde, autograde_assignment, grade_submission, submissions
from .grades import ShortTracebacks, feedback, format_table, scores, show_scores
from .layout import REPO, assignments, graded_cells, manual_cells, notebook_path
from .nbgrader_tools import ensure_in_gradebook, nbgrader, references, release, scratch_course
from .submissions import DEMO_BUGS, SOLUTION_RE, demo, make_submission, solution_body

__all__ = ["REPO", "assignments", "notebook_path", "graded_cells", "manual_cells",
           "nbgrader", "release", "scratch_course", "ensure_in_gradebook", "references",
           "SOLUTION_RE", "DEMO_BUGS", "make_submission", "solution_body", "demo",
           "ShortTracebacks", "autograde", "autograde_assignment", "grade_submission", "submissions", "scores", "format_table", "show_scores", "feedback"]

