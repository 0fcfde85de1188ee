"""`make lab` shows a student's JupyterLab, `make lab INSTRUCTOR=1` an instructor's: JupyterLab started with the
options of the Makefile's `lab` recipe (read with `make -n`), its served page config (`disabledExtensions`), its
settings API (the news prompt and the update check) and nbgrader's server extensions checked in both modes; then the
page itself in Chromium (marker `browser`): the Validate button and the Assignment List are there, Formgrader,
Course List and Create Assignment only for the instructor."""
import glob
import json
import re
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import nbgrader
import pytest

from browser_lab import chromium_executable, jupyterlab, write_notebook

REPO = Path(__file__).resolve().parents[1]
# nbgrader's instructor plugins (ids from its labextension) and the student plugins that must stay
INSTRUCTOR_PLUGINS = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                      "@jupyter/nbgrader:course-list"}
STUDENT_PLUGINS = {"@jupyter/nbgrader:validate-assignment", "@jupyter/nbgrader:assignment-list",
                   "@jupyter/nbgrader:menu"}
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def lab_recipe(instructor: bool) -> list[str]:
    """The commands `make lab` runs (`make -n`: printed, not run), ROOT_FLAG and LAB_ARGS left empty."""
    printed = subprocess.run(["make", "-n", "-s", "lab", f"INSTRUCTOR={1 if instructor else ''}", "ROOT_FLAG=",
                              "LAB_ARGS="], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in printed.splitlines() if "xai-lab workspace" in line or "bin/jupyter lab" in line]


def lab_options(instructor: bool) -> tuple[str, list[str]]:
    """(the folder `make lab` serves, its other options for `jupyter lab`)."""
    commands = lab_recipe(instructor)
    assert len(commands) == 2 and "xai-lab workspace" in commands[0], \
        f"`make lab` should sync the workspace, then start JupyterLab: {commands}"
    words = shlex.split(commands[1])
    options = words[words.index("lab") + 1:]
    served = [o for o in options if o.startswith("--notebook-dir=")]
    assert len(served) == 1, f"`make lab` should give --notebook-dir once: {options}"
    return served[0].split("=", 1)[1], [o for o in options if o not in served]


def test_make_lab_serves_the_workspace_to_a_student_and_the_repository_to_an_instructor():
    assert lab_options(False)[0] == "workspace"
    assert lab_options(True)[0] == "."


def test_the_plugin_ids_are_nbgrader_s():
    """The disabled ids are plugins of the installed nbgrader labextension (a typo would disable nothing)."""
    bundle = "".join(Path(p).read_text(errors="replace")
                     for p in glob.glob(str(Path(nbgrader.__file__).parent / "labextension" / "static" / "*.js")))
    for plugin in INSTRUCTOR_PLUGINS | STUDENT_PLUGINS:
        assert f'"{plugin}"' in bundle, f"{plugin} is not a plugin of nbgrader {nbgrader.__version__}"


@pytest.fixture(scope="module", params=[False, True], ids=["student", "instructor"])
def lab(request):
    """JupyterLab with the options of `make lab` (INSTRUCTOR=1 or not), no user settings, a small notebook."""
    _, options = lab_options(request.param)
    with jupyterlab(args=tuple(options), settings={}) as running:
        write_notebook(running.root / "assignment.ipynb", ["print('hello')"])
        running.instructor = request.param
        yield running


def page_config(lab) -> dict:
    page = urllib.request.urlopen(lab.url("lab"), timeout=10).read().decode()
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "no page config in the /lab page"
    return json.loads(found.group(1))


def test_nbgrader_s_instructor_plugins_are_for_instructors_only(lab):
    disabled = set(page_config(lab)["disabledExtensions"])
    assert not disabled & STUDENT_PLUGINS
    assert disabled & INSTRUCTOR_PLUGINS == (set() if lab.instructor else INSTRUCTOR_PLUGINS)


def test_no_news_prompt_and_no_update_check(lab):
    setting = json.load(urllib.request.urlopen(lab.url(f"lab/api/settings/{NOTIFICATION}"), timeout=10))
    defaults = {k: v["default"] for k, v in setting["schema"]["properties"].items()}
    assert json.loads(setting["raw"] or "{}") == {}  # no user setting: what the lab ships is what is checked
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False


def test_the_formgrader_is_served_to_instructors_only(lab):
    try:
        status = urllib.request.urlopen(lab.url("formgrader"), timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    assert (status == 404) != lab.instructor, f"/formgrader answered {status}"


@pytest.mark.browser
def test_the_page_a_student_sees(lab):
    """A student's page: a notebook, with nbgrader's Validate button in its toolbar. An instructor's: the lab
    without a notebook (no kernel to start and stop), with every nbgrader panel."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"the Python package playwright is missing ({error}): pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(),
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            if lab.instructor:
                page.goto(lab.url("lab"))
                page.wait_for_selector(".jp-Launcher", timeout=60_000)
            else:
                page.goto(lab.url("lab/tree/assignment.ipynb"))
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                validate = page.locator(".validate-button")
                validate.first.wait_for(state="visible", timeout=15_000)
                assert "Validate" in validate.first.inner_text()
            page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").first.click()
            items = set(page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").all_inner_texts())
            page.keyboard.press("Escape")
            tabs = " ".join(page.locator(".lm-TabBar-tab").evaluate_all(
                "ts => ts.map(t => t.title + ' ' + t.innerText)"))
            text = page.locator("body").inner_text()
        finally:
            browser.close()
            for kernel in lab.api("kernels"):  # the notebook's kernel, stopped before the server
                lab.api(f"kernels/{kernel['id']}", method="DELETE")
    assert "Assignment List" in items
    instructor_items = {"Formgrader", "Course List", "Create assignment"}
    assert (items >= instructor_items) if lab.instructor else not (items & instructor_items), items
    assert ("Create Assignment" in tabs) == lab.instructor, tabs
    assert "official Jupyter news" not in text
