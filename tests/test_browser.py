"""The explorers as a student meets them: JupyterLab on localhost (tests/browser_lab.py), a small notebook opened in
Chromium (Debian's package, `make browser-tools`, driven by Playwright through its executable: nothing is
downloaded), every cell run from the Run menu, each explorer rendered, one of its dropdowns changed and the new
image waited for and timed, a screenshot of each explorer saved to build/test-artifacts/browser/<name>.png.

Select it alone with `pytest -m browser`. If Chromium or Playwright cannot start, it fails and says why."""
import json
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from browser_lab import ARTEFACTS, chromium_executable, jupyterlab, lab_backend, write_notebook

pytestmark = pytest.mark.browser

NOTEBOOK = "explorers.ipynb"
SETUP = """\
import json, os, sys
json.dump({"executable": sys.executable, "MPLBACKEND": os.environ.get("MPLBACKEND")}, open("kernel.json", "w"))"""


@dataclass(frozen=True)
class Explorer:
    name: str      # its CSS class is xai-<name>
    cell: str      # the notebook cell that displays it
    control: str   # the Dropdown to change (CSS class xai-control-<control>)
    value: str | None = None  # the option to pick; None: the one after the current one


# The browser path on its own (JupyterLab, the widget manager, an Image that follows a Dropdown), so that a
# failure of an explorer below is told apart from a failure of the browser set-up.
BASELINE = Explorer("baseline", """\
import io, ipywidgets as w
from PIL import Image as _Image
def _png(colour):
    buffer = io.BytesIO(); _Image.new("RGB", (64, 64), colour).save(buffer, "PNG"); return buffer.getvalue()
_pick = w.Dropdown(options=["red", "green", "blue"], description="colour")
_image = w.Image(value=_png("red"), format="png")
_pick.observe(lambda change: setattr(_image, "value", _png(change["new"])), "value")
_pick.add_class("xai-control-colour"); _image.add_class("xai-output")
_box = w.VBox([_pick, _image]); _box.add_class("xai-explorer"); _box.add_class("xai-baseline")
_box""", "colour")

# The four explorers with their defaults (the shipped models) on small samples; the dropdown each test changes.
EXPLORERS = [BASELINE] + [
    Explorer("explain", "from xai_lab.widgets import explain_explorer\nexplain_explorer(n=4)", "method", "grad_cam"),
    Explorer("dissection", "from xai_lab.widgets import dissection_explorer\ndissection_explorer(n=50)", "layer",
             "features.10"),
    Explorer("evaluation", "from xai_lab.widgets import evaluation_explorer\nevaluation_explorer(n=4)", "method",
             "saliency"),
    Explorer("design", "from xai_lab.widgets import design_explorer\ndesign_explorer(n=4)", "image"),
]

KERNEL_TIMEOUT = 60_000   # ms, from opening the notebook to an idle kernel
RUN_TIMEOUT = 120_000     # ms, from "Run All Cells" to every cell done (the explorers are built one after the other)
RENDER_TIMEOUT = 15_000   # ms, from every cell done to an explorer's image in the page
CHANGE_TIMEOUT = 30_000   # ms, from a dropdown change to the new image


def _fail_with_page(page, lab, what: str, name: str):
    """Fail, saying what did not happen, with the errors the notebook shows and a screenshot of the page."""
    shot = ARTEFACTS / f"{name}-failure.png"
    try:
        page.screenshot(path=str(shot), full_page=True)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    except Exception as error:  # the page itself is gone: say so rather than hide the first failure
        errors = [f"(could not read the page: {error})"]
    pytest.fail(f"{what}\nnotebook errors/stderr:\n" + ("\n---\n".join(errors)[-3000:] or "(none)")
                + f"\nscreenshot: {shot}\nJupyterLab log (end):\n{lab.log(1500)}", pytrace=False)


def _wait_for_idle_kernel(page, lab):
    deadline = time.monotonic() + KERNEL_TIMEOUT / 1000
    while time.monotonic() < deadline:
        kernels = lab.api("kernels")
        if kernels and all(k["execution_state"] == "idle" and k["connections"] for k in kernels) and page.locator(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
        time.sleep(0.25)
    _fail_with_page(page, lab, f"the notebook's kernel was not idle within {KERNEL_TIMEOUT / 1000:.0f} s "
                    f"(server: {lab.api('kernels')})", "kernel")


def _wait_until_every_cell_ran(page, lab):
    """Every cell numbered (none queued or running) and the kernel idle: the timings below then measure the
    explorer alone, not a kernel still busy building the next one."""
    every_cell_ran = """() => {
      const prompts = [...document.querySelectorAll(".jp-Notebook .jp-CodeCell .jp-InputPrompt")];
      return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }"""
    try:
        page.wait_for_function(every_cell_ran, timeout=RUN_TIMEOUT)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=RUN_TIMEOUT)
    except Exception:
        _fail_with_page(page, lab, f"the notebook's cells did not all run within {RUN_TIMEOUT / 1000:.0f} s "
                        "of Run > Run All Cells", "run-all")


@pytest.fixture(scope="module")
def notebook():
    """JupyterLab with the explorers' notebook open in Chromium and every cell run (from the Run menu):
    yields `page`, `lab` and `run_all` (seconds from the click to every cell done)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"the Python package playwright is missing ({error}): `make test` installs the test extra "
                    "(pip install -e '.[test]')", pytrace=False)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for stale in [ARTEFACTS / "timings.json", *ARTEFACTS.glob("*-failure.png")]:  # of an earlier run
        stale.unlink(missing_ok=True)
    with jupyterlab() as lab:
        write_notebook(lab.root / NOTEBOOK, [SETUP] + [e.cell for e in EXPLORERS])
        try:
            playwright = sync_playwright().start()
        except Exception as error:
            pytest.fail(f"Playwright could not start its driver: {error}", pytrace=False)
        try:
            try:
                executable = chromium_executable()
                browser = playwright.chromium.launch(executable_path=executable,
                                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
            except Exception as error:
                pytest.fail(f"Chromium could not start through Playwright ({error}); `make browser-tools` installs "
                            "Debian's chromium", pytrace=False)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(lab.url(f"lab/tree/{NOTEBOOK}"))
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=KERNEL_TIMEOUT)
            _wait_for_idle_kernel(page, lab)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
            started = time.monotonic()
            _wait_until_every_cell_ran(page, lab)
            yield SimpleNamespace(page=page, lab=lab, run_all=time.monotonic() - started)
            browser.close()
        finally:
            playwright.stop()


def test_the_kernel_runs_as_make_lab_runs_it(notebook, capsys):
    page, lab = notebook.page, notebook.lab
    with capsys.disabled():
        print(f"\n  browser: {len(EXPLORERS) + 1} cells ran in {notebook.run_all:.1f} s (Run > Run All Cells)")
    written = lab.root / "kernel.json"  # by the first cell
    if not written.exists():
        _fail_with_page(page, lab, "the notebook's first cell wrote no kernel.json", "kernel")
    kernel = json.loads(written.read_text())
    # `make lab` runs this environment's jupyter, whose python3 kernel is this Python, with the Makefile's MPLBACKEND
    assert kernel == {"executable": sys.executable, "MPLBACKEND": lab_backend()}


_WATCH = """(img, select) => {
  const watch = {src: img.src, changed: null, shown: null};
  window.__xaiWatch = watch;
  select.addEventListener("change", () => { watch.changed = performance.now(); }, {capture: true, once: true});
  new MutationObserver((mutations, observer) => {
    if (img.src === watch.src) return;
    watch.src = img.src; observer.disconnect();
    const done = () => { watch.shown = performance.now(); };
    img.decode().then(done, done);
  }).observe(img, {attributes: true, attributeFilter: ["src"]});
}"""


def _change_and_time(page, lab, name, image, select, value) -> float:
    """Pick `value` in the select and wait for the image to show a new picture; seconds from change to shown."""
    image.evaluate(_WATCH, select.element_handle())
    select.select_option(value=value)
    try:
        page.wait_for_function("() => window.__xaiWatch.shown !== null && window.__xaiWatch.changed !== null",
                               timeout=CHANGE_TIMEOUT)
    except Exception:
        _fail_with_page(page, lab, f"{name}: the image did not change within {CHANGE_TIMEOUT / 1000:.0f} s "
                        f"after choosing {value!r}", name)
    watch = page.evaluate("() => window.__xaiWatch")
    return (watch["shown"] - watch["changed"]) / 1000


@pytest.mark.parametrize("explorer", EXPLORERS, ids=lambda e: e.name)
def test_explorer_renders_and_answers_a_dropdown(notebook, explorer, capsys):
    page, lab = notebook.page, notebook.lab
    box = page.locator(f".xai-explorer.xai-{explorer.name}")
    image = box.locator("img.xai-output, .xai-output img").first
    try:
        image.wait_for(state="visible", timeout=RENDER_TIMEOUT)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=RENDER_TIMEOUT)
    except Exception:
        _fail_with_page(page, lab, f"{explorer.name}: no explorer with an image (.xai-explorer.xai-{explorer.name} "
                        f"img.xai-output) within {RENDER_TIMEOUT / 1000:.0f} s of the last cell's end", explorer.name)
    select = box.locator(f".xai-control-{explorer.control} select")
    options = select.evaluate("s => [...s.options].map(o => o.value)")
    current = select.evaluate("s => s.value")
    value = explorer.value or options[(options.index(current) + 1) % len(options)]
    assert value in options and value != current, f"{explorer.name}: cannot pick {value!r} (options {options})"
    first = _change_and_time(page, lab, explorer.name, image, select, value)
    shot = ARTEFACTS / f"{explorer.name}.png"
    box.screenshot(path=str(shot))
    again = _change_and_time(page, lab, explorer.name, image, select, current)  # back: computed before
    record = ARTEFACTS / "timings.json"
    timings = json.loads(record.read_text()) if record.exists() else {}
    timings["run_all_cells_s"] = round(notebook.run_all, 2)
    timings[explorer.name] = {"control": explorer.control, "value": value, "change_to_image_s": round(first, 3),
                              "back_to_image_s": round(again, 3), "screenshot": str(shot)}
    record.write_text(json.dumps(timings, indent=1))
    with capsys.disabled():
        print(f"\n  browser {explorer.name}: {explorer.control} -> {value!r}: new image {first:.3f} s after the change, "
              f"back {again:.3f} s; screenshot {shot}")
