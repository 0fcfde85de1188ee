# xai-lab: two commands do everything on a fresh machine.
#   make lab    set up the environment (first time only) and open your workspace/ in JupyterLab: your own copy of
#               the assignments (made from course/ the first time; an assignment released later is added; nothing
#               in it is ever overwritten, not even by `make release`), in a student's lab (Validate, Assignment
#               List; no news prompt). `make lab INSTRUCTOR=1`: nbgrader's instructor panels too (Formgrader,
#               Create Assignment, Course List), on the whole repository.
#   make test   set up the environment (first time only) and run every test
# Instructor side: make release | references | autograde | feedback | demo | weights | figures | bench
#   each runs `xai-lab <target>` (`.venv/bin/xai-lab --help` lists them, with their options)

SHELL   := /bin/bash
VENV    ?= .venv
PY      := $(VENV)/bin/python
XAI     := $(VENV)/bin/xai-lab
STAMP   := $(VENV)/.installed
# torch/torchvision: the CPU-capable builds this platform provides; never newer than the cap.
TORCH   := torch==2.14.1 torchvision==0.29.1
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: help env sandbox-tools browser-tools lab test test-fast release references autograde feedback demo weights figures bench clean

help:
	@grep -E '^#' Makefile | sed 's/^# \{0,1\}//'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

env: $(STAMP)

# From Debian's packages: the grading sandbox (bubblewrap, prlimit) for autograding, and PostgreSQL for
# the test of a PostgreSQL gradebook.
sandbox-tools:
	@command -v bwrap >/dev/null && command -v prlimit >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap util-linux postgresql >/dev/null; \
	  else echo "needs Debian packages: sudo apt-get install bubblewrap util-linux postgresql" >&2; exit 1; fi; }

# From Debian's packages: Chromium for the browser test of the widgets (tests/test_browser.py), driven through
# this executable by the Python `playwright` package (a test extra); `playwright install` (a download) is never run.
browser-tools:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium fonts-liberation >/dev/null; \
	  else echo "needs Debian packages: sudo apt-get install chromium fonts-liberation" >&2; exit 1; fi; }

# JupyterLab refuses to run as root unless told; containers often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# The lab's settings (jupyter/<mode>/: page_config.json disables JupyterLab plugins, overrides.json sets defaults)
# are chosen here on the command line; the user's own Jupyter configuration is read as usual and never written.
# A student's lab also runs without nbgrader's formgrader and course-list server extensions. An instructor's lab
# serves the repository: the formgrader needs the course directory inside the served folder.
LAB_MODE   := $(if $(filter-out 0,$(INSTRUCTOR)),instructor,student)
LAB_ROOT   := $(if $(filter-out 0,$(INSTRUCTOR)),.,workspace)
LAB_SERVER := $(if $(filter-out 0,$(INSTRUCTOR)),,$(foreach x,formgrader course_list,--ServerApp.jpserver_extensions=nbgrader.server_extensions.$(x)=False))

lab: $(STAMP)
	$(XAI) workspace
	MPLBACKEND=module://matplotlib_inline.backend_inline $(VENV)/bin/jupyter lab --notebook-dir=$(LAB_ROOT) --LabApp.app_settings_dir=$(CURDIR)/jupyter/$(LAB_MODE) $(LAB_SERVER) $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP) sandbox-tools browser-tools
	$(PY) -m pytest tests solutions --nbval-lax -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not pipeline" -p no:cacheprovider $(PYTEST_ARGS)

release: $(STAMP)
	$(XAI) release

references: $(STAMP)
	$(XAI) references

autograde: $(STAMP) sandbox-tools
	$(XAI) autograde

feedback: $(STAMP)
	$(XAI) feedback

demo: $(STAMP) sandbox-tools
	$(XAI) demo

weights: $(STAMP)
	$(XAI) weights

figures: $(STAMP)
	$(XAI) figures

bench: $(STAMP)
	$(XAI) bench

clean:
	rm -rf submitted autograded feedback gradebook.db .pytest_cache
