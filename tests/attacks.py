"""Submissions of a student who wants marks without the work, and of honest students with untidy
notebooks: each is a function that edits a solved (or blank) notebook, with the score it must get.

Each attack is written as a student could write it from what the course shows them (the library's
source, the notebook, the README). The pipeline test grades them all in one run with the honest
submissions and checks every expected score, that the references and the gradebook are intact,
and that the same submission gets the same grade every time.
"""
from __future__ import annotations

import copy

import nbformat

# code an attacker adds in a cell of their own -----------------------------------------------------
FAKE_KERNEL = r'''
import sys, json, ast
from IPython import get_ipython
from IPython.display import display
import xai_lab.grading as grading
grading.check = lambda *a, **k: print("matches the reference")          # the old verdict, faked
grading.compare = lambda *a, **k: []
grading.forbid = __import__("contextlib").nullcontext
ip = get_ipython()
class Swallow(ast.NodeTransformer):                                       # every later cell: errors swallowed
    def visit_Module(self, node):
        body = ast.parse("try:\n    pass\nexcept BaseException:\n    pass").body[0]
        body.body = node.body or [ast.Pass()]
        node.body = [body]
        return ast.fix_missing_locations(node)
ip.ast_transformers.append(Swallow())
def fake(result):
    for ex in ("accuracy", "per_class_accuracy", "subgroup_accuracy", "largest_gap", "watermark_effect",
               "capture_activations", "top_k_images", "interpretation_or_explanation"):
        display({"application/vnd.xai-lab.record+json": {"exercise": ex, "value": 0.5}}, raw=True)
    ip.displayhook(10 ** 9)                                               # nbgrader reads a number as partial credit
ip.events.register("post_run_cell", fake)
sys.stderr = sys.stdout
'''

REACH_LIBRARY = {  # answer cell -> a body that reaches the library's own implementation
    "per_class_accuracy": "from xai_lab import analysis as a\nreturn a.per_class_accuracy(pred, labels, num_classes)",
    "subgroup_accuracy": (
        "import subprocess, sys, pickle, base64\n"
        "code = ('import pickle, sys, base64, torch; from xai_lab import analysis; a = pickle.loads(base64.b64decode(sys.argv[1])); '\n"
        "        'print(base64.b64encode(pickle.dumps(analysis.subgroup_accuracy(*a))).decode())')\n"
        "arg = base64.b64encode(pickle.dumps((pred, labels, group, num_classes, num_groups))).decode()\n"
        "out = subprocess.run([sys.executable, '-c', code, arg], capture_output=True, text=True).stdout\n"
        "return pickle.loads(base64.b64decode(out))"),
    "largest_gap": (
        "import inspect, xai_lab.analysis as a\n"
        "ns = dict(vars(a))\n"
        "exec(inspect.getsource(a.largest_gap), ns)\n"
        "return ns['largest_gap'](table)"),
    "watermark_effect": (
        "import threading, sys\n"
        "from xai_lab import analysis\n"
        "sys.settrace(None)\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(analysis.watermark_effect(pred, labels, watermark)))\n"
        "t.start(); t.join()\n"
        "return out[0]"),
    "top_k_images": (
        "import multiprocessing as mp\n"
        "from xai_lab import analysis\n"
        "with mp.get_context('spawn').Pool(1) as pool:\n"
        "    return pool.apply(analysis.top_k_images, (activations, unit, k))"),
}

REPLAY = (  # accuracy from the stored reference outputs, wherever they are
    "import torch, pathlib, xai_lab.grading as g\n"
    "paths = [g.references_dir() / '00_foundations.pt'] + [p / 'references' / '00_foundations.pt' for p in pathlib.Path.cwd().parents]\n"
    "for p in paths:\n"
    "    if p.exists():\n"
    "        return torch.load(p)['accuracy']\n"
    "raise FileNotFoundError('no references to replay')")

VANDAL = r'''
import pathlib, sqlite3, os, urllib.request
import xai_lab.grading as g
hits = []
for base in [g.references_dir().parent, *pathlib.Path(g.__file__).parents, *pathlib.Path.cwd().parents]:
    for name in ("references/00_foundations.pt", "gradebook.db"):
        p = base / name
        try:
            if name.endswith(".pt"):
                p.write_bytes(b"garbage")
            else:
                con = sqlite3.connect(p); con.execute("UPDATE grade SET auto_score = 0"); con.commit(); con.close()
                os.remove(p)
            hits.append(str(p))
        except Exception as e:
            pass
try:
    urllib.request.urlopen("http://1.1.1.1", timeout=3)
    hits.append("network")
except Exception:
    pass
print("reached:", hits)
'''

FAULTS = {  # answer cell -> code after the function definition that ends the kernel or never ends
    "per_class_accuracy": "exit()",
    "largest_gap": "import os\nos._exit(3)",
    "top_k_images": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "watermark_effect": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
}

NOISY = ("import sys, logging, warnings\n"
         "print('working...', file=sys.stderr)\n"
         "logging.getLogger('student').warning('a log line')\n"
         "warnings.warn('a warning')\n")

AGREEABLE = r'''
class Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("eq", "__eq__", "allclose", "isclose", "equal", "ne", "__ne__"):
            return True if "eq" in func.__name__ or "close" in func.__name__ else False
        return super().__torch_function__(func, types, args, kwargs or {})
'''


# editing a notebook --------------------------------------------------------------------------------
def _cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _insert_after(nb, gid, source):
    i = nb.cells.index(_cell(nb, gid))
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(source))


def fake_kernel(nb):
    _insert_after(nb, "setup", FAKE_KERNEL)


def reach_library(nb, replace):
    replace.update(REACH_LIBRARY)


def vandal(nb, replace):
    replace["accuracy"] = REPLAY
    _insert_after(nb, "setup", VANDAL)


def faults(nb):
    for gid, code in FAULTS.items():
        _cell(nb, gid).source += "\n" + code


def noisy(nb, replace, solution_body):
    replace["per_class_accuracy"] = NOISY + solution_body("per_class_accuracy")
    _insert_after(nb, "setup", "import torch\ntry:\n    torch.empty(30 * 2**30, dtype=torch.uint8).fill_(1)\nexcept Exception as e:\n    print(type(e).__name__)")


def damaged(nb):
    del _cell(nb, "per_class_accuracy").metadata["nbgrader"]            # the answer keeps only its cell id
    dup = copy.deepcopy(_cell(nb, "test_accuracy"))
    dup.id = "my-copy"
    nb.cells.append(dup)                                                 # a duplicated grade id
    _cell(nb, "largest_gap").metadata["nbgrader"]["schema_version"] = 99
    nb.cells.remove(_cell(nb, "test_top_k_images"))                     # a deleted test cell
    test = _cell(nb, "test_watermark_effect")
    test.source, test.metadata["nbgrader"]["points"] = "pass  # trust me", 100   # an edited test cell


def tensor_subclass(nb, replace):
    _insert_after(nb, "setup", AGREEABLE)
    replace["per_class_accuracy"] = "return torch.zeros(num_classes).as_subclass(Agreeable)"


# name -> (base: "solution" or "blank", how to edit, points lost: exercises expected to score 0)
ATTACKS_00 = {
    "fakes-the-kernel": ("blank", "nb", fake_kernel, "all"),
    "reaches-the-library": ("solution", "replace", reach_library, set(REACH_LIBRARY)),
    "replays-and-vandalises": ("solution", "replace", vandal, {"accuracy"}),
    "kills-its-kernel": ("solution", "nb", faults, set(FAULTS)),
    "honest-but-noisy": ("solution", "body", noisy, set()),
    "damaged-notebook": ("solution", "nb", damaged, set()),
    "returns-a-tensor-subclass": ("solution", "replace", tensor_subclass, {"per_class_accuracy"}),
}
