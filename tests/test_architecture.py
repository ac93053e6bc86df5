"""The architecture of retroscope, checked on the source text (nothing is imported or run).

Why: retroscope is split into layers so that each part can be read, tested and changed on its
own, and so that a new measurement ("task") or a new network family ("learner") is added in one
place without touching shared code. These tests keep that structure from eroding.

Rules
-----
1. **Layers.** Imports run one way, from higher layers down to lower ones::

       io  <-  core  <-  data, compute, models, plots, runs  <-  train  <-  learners
           <-  infer, explain  <-  evaluate  <-  cli, demo

   A module may import its own layer and any lower layer, never a higher one. This holds for
   every import, also for those inside functions or ``if TYPE_CHECKING:`` blocks and for
   ``importlib.import_module("retroscope...")``: a deferred import is still a dependency. The
   package root ``retroscope/__init__.py`` holds only ``__version__``: every layer may import
   it and it imports nothing. A new top-level package must be given a place in ``LAYERS``;
   until then it is reported as an "unknown layer".
2. **Tasks are leaf plugins.** Shared code finds tasks only through the entry-point group
   ``retroscope.tasks`` (see pyproject.toml), so no module outside ``retroscope.tasks`` imports
   a task, ``retroscope/tasks/__init__.py`` imports no task, and one task never imports
   another. A task may use every layer except the front ends ``cli`` and ``demo``.
3. **No circles.** No group of modules imports each other in a circle (A -> B -> ... -> A), and
   no two top-level packages depend on each other (e.g. ``data`` <-> ``compute``), even when
   the layer rule alone would allow it.
4. **No task names in shared code.** Outside ``retroscope/tasks`` no code, comment or docstring
   names a task (the entry-point names in pyproject.toml) or an atom-cloud class (MOT, ODT,
   BEC): shared code must work for tasks it has never heard of.
5. **No learner chosen by string.** Nowhere is a learner compared to a string such as
   ``task.learner == "detection"``: each learner brings its own behaviour instead.
"""

from __future__ import annotations

import ast
import re
import textwrap
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "retroscope"
ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / PACKAGE
PYPROJECT = ROOT / "pyproject.toml"

# The layers of retroscope, lowest first. A module may import its own layer and lower ones.
LAYERS = (
    ("io",),        # file formats, atomic writes
    ("core",),      # parameters, targets, task and learner protocols, registries, transforms
    ("data", "compute", "models", "plots", "runs"),
    ("train",),     # training machinery shared by learners
    ("learners",),  # one package per learner: regression, detection, ...
    ("infer", "explain"),  # explain: attribution maps of a run, beside its predictions
    ("evaluate", "live"),  # live: watch a folder and serve a page of its answers
    ("cli", "demo"),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
TASKS = "tasks"                # leaf plugins, outside the layers
FRONT_ENDS = ("cli", "demo")   # the layers a task may not import
CLASS_NAMES = ("mot", "odt", "bec")  # atom-cloud classes of the clouds task


# ---------------------------------------------------------------------------------------------
# Finding the imports
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import of a retroscope module, as written in the source."""

    source: str  # the importing module, e.g. "retroscope.core.task"
    target: str  # the imported module, e.g. "retroscope.infer.readers"
    where: str   # file and line of the import, e.g. "retroscope/core/task.py:231"

    def __str__(self) -> str:
        return f"{self.where}: imports {self.target}"


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name: core/task.py -> retroscope.core.task."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def shown(path: Path, package_dir: Path) -> str:
    """A file as it appears in messages: retroscope/core/task.py."""
    return f"{PACKAGE}/{path.relative_to(package_dir).as_posix()}"


def is_ours(name: str) -> bool:
    """True for retroscope and its submodules (not for e.g. retroscope_extras)."""
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def absolute_base(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The module named after ``from``, with a relative import (``from ..x``) made absolute.

    A relative import counts from the package of the importing module: for
    retroscope/core/sub/mod.py ``.`` is retroscope.core.sub and ``..`` is retroscope.core.
    None when it climbs above the top package.
    """
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_dynamic_import(node: ast.AST) -> bool:
    """True for ``importlib.import_module("...")`` or ``__import__("...")`` with a fixed name."""
    if not (isinstance(node, ast.Call) and node.args):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    return (name in ("import_module", "__import__") and isinstance(first, ast.Constant)
            and isinstance(first.value, str))


def imported_modules(node: ast.AST, module: str, is_package: bool, modules) -> list[str]:
    """The modules one syntax-tree node imports; [] for anything that is not an import."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = absolute_base(node, module, is_package)
        if base is None:
            return []
        # `from retroscope.data import shards` imports the module retroscope.data.shards
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names]
    if is_dynamic_import(node):
        return [node.args[0].value]
    return []


def imports_in(path: Path, module: str, modules, package_dir: Path) -> list[Import]:
    """Every import of a retroscope module in one file, wherever it stands in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):  # visits function bodies and `if` blocks too
        for target in imported_modules(node, module, path.name == "__init__.py", modules):
            if is_ours(target) and target != module:
                found.add((node.lineno, target))
    file = shown(path, package_dir)
    return [Import(module, target, f"{file}:{line}") for line, target in sorted(found)]


# ---------------------------------------------------------------------------------------------
# Rules 1 and 2: layers and tasks
# ---------------------------------------------------------------------------------------------


def component(module: str) -> str:
    """The top-level part below retroscope: retroscope.learners.regression.fit -> learners.

    A top-level file is its own part (retroscope.cli -> cli); the package root gives "".
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def task_of(module: str) -> str | None:
    """The task a module belongs to: retroscope.tasks.clouds.fit -> clouds; None otherwise."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == TASKS else None


def task_rule_broken(imp: Import) -> str | None:
    """Why an import made inside retroscope.tasks breaks the task rules, or None if allowed."""
    own, other = task_of(imp.source), task_of(imp.target)
    if component(imp.target) in FRONT_ENDS:
        return f"a task may not import the front end '{component(imp.target)}'"
    if other is None or other == own:
        return None
    if own is None:
        return "retroscope/tasks/__init__.py must import no task: tasks are found by entry point"
    return f"tasks are leaves: task '{own}' may not import task '{other}'"


def rule_broken(imp: Import) -> str | None:
    """Why one import breaks the layer or task rules, or None if it is allowed."""
    source, target = component(imp.source), component(imp.target)
    if source == "":
        return "the package root holds only __version__ and imports nothing from retroscope"
    if target == "":
        return None  # every layer may read __version__
    if target not in LEVEL and target != TASKS:
        return f"unknown layer '{target}': place it in LAYERS"
    if source == TASKS:
        return task_rule_broken(imp)
    if source not in LEVEL:
        return None  # the whole unknown package is reported once by unknown_layers()
    if target == TASKS:
        return ("tasks are leaves: shared code finds tasks through the entry-point group "
                "'retroscope.tasks', never by import")
    if LEVEL[target] > LEVEL[source]:
        return f"upward import: layer '{source}' may not import the higher layer '{target}'"
    return None


def unknown_layers(modules: dict[str, Path], package_dir: Path) -> list[str]:
    """One message per top-level package or file that has no place in LAYERS."""
    first_file: dict[str, Path] = {}
    for name, path in modules.items():
        part = component(name)
        if part and part != TASKS and part not in LEVEL:
            first_file.setdefault(part, path)
    return [f"{shown(path, package_dir)}:1: {PACKAGE}.{part} is in no layer "
            f"(unknown layer '{part}': place it in LAYERS)" for part, path in first_file.items()]


# ---------------------------------------------------------------------------------------------
# Rule 3: circles
# ---------------------------------------------------------------------------------------------


def import_graph(imports: list[Import], node_of) -> dict[str, dict[str, Import]]:
    """Who imports whom: {node: {imported node: first import making that link}}.

    ``node_of`` maps a module to a graph node (the module itself, or its top-level package);
    links from a node to itself and to the package root are left out.
    """
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        a, b = node_of(imp.source), node_of(imp.target)
        if a and b and a != b:
            graph.setdefault(a, {}).setdefault(b, imp)
    return graph


def reachable(graph: dict[str, dict], start: str) -> set[str]:
    """Every node reached from ``start`` by following imports (``start`` only via a loop)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), {}):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def circles(graph: dict[str, dict]) -> list[list[str]]:
    """Groups of two or more nodes that all reach each other (strongly connected components)."""
    reach = {node: reachable(graph, node) for node in graph}
    groups, done = [], set()
    for node in sorted(graph):
        if node in done:
            continue
        group = sorted({node} | {other for other in reach[node] if node in reach.get(other, ())})
        done.update(group)
        if len(group) > 1:
            groups.append(group)
    return groups


def shortest_loop(graph: dict[str, dict], start: str) -> list[str]:
    """The shortest chain of imports from ``start`` back to itself: [start, ..., start]."""
    previous: dict[str, str] = {}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        for nxt in graph.get(node, {}):
            if nxt == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                return chain[::-1] + [start]
            if nxt not in previous:
                previous[nxt] = node
                todo.append(nxt)
    return []


def circle_violations(imports: list[Import]) -> list[str]:
    """One message per circle of modules and per circle of top-level packages."""
    messages = []
    for kind, node_of in (("modules", lambda module: module), ("top-level packages", component)):
        graph = import_graph(imports, node_of)
        for group in circles(graph):
            loop = min((shortest_loop(graph, node) for node in group), key=len)
            steps = "; ".join(str(graph[a][b]) for a, b in zip(loop, loop[1:]))
            messages.append(f"import circle between {kind} {', '.join(group)}: {steps}")
    return messages


# ---------------------------------------------------------------------------------------------
# All import rules together
# ---------------------------------------------------------------------------------------------


def import_violations(package_dir: Path) -> list[str]:
    """Every broken import rule (layers, tasks, circles) in the package at ``package_dir``.

    Each message names the importing file and line, the imported module and the rule.
    """
    modules = module_files(package_dir)
    imports = [imp for name, path in modules.items()
               for imp in imports_in(path, name, modules, package_dir)]
    violations = unknown_layers(modules, package_dir)
    violations += [f"{imp} ({why})" for imp in imports if (why := rule_broken(imp))]
    violations += circle_violations(imports)
    return violations


# ---------------------------------------------------------------------------------------------
# Rules 4 and 5: text searches
# ---------------------------------------------------------------------------------------------

LEARNER_STRING_PATTERNS = (
    # learner == "detection", task.learner != 'x', _run_learner(run) == "x"
    re.compile(r"learner[\w.]*(\([^()]*\))?\s*(==|!=)\s*[rbuf]?['\"]", re.IGNORECASE),
    # "detection" == task.learner
    re.compile(r"['\"]\w+['\"]\s*(==|!=)\s*[\w.]*learner", re.IGNORECASE),
    # learner in ("detection", "regression")
    re.compile(r"learner[\w.]*\s+(not\s+)?in\s*[(\[{]\s*['\"]", re.IGNORECASE),
    # getattr(task, "learner", "regression")
    re.compile(r"getattr\([^)]*['\"]learner['\"]"),
    # match task.learner:  (followed by case "detection":)
    re.compile(r"^\s*match\s+[\w.()]*learner", re.IGNORECASE),
)


def task_names() -> list[str]:
    """Task names from pyproject.toml's entry points, plus the atom-cloud class names."""
    with PYPROJECT.open("rb") as file:
        project = tomllib.load(file)["project"]
    return sorted(project["entry-points"]["retroscope.tasks"]) + list(CLASS_NAMES)


def matching_lines(files: list[Path], patterns, package_dir: Path) -> list[str]:
    """'file:line: text' for every line of ``files`` that one of ``patterns`` matches."""
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(pattern.search(line) for pattern in patterns):
                hits.append(f"{shown(path, package_dir)}:{number}: {line.strip()}")
    return hits


def task_name_hits(package_dir: Path, names: list[str]) -> list[str]:
    """Lines outside retroscope/tasks that name a task, as whole words in any case."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    shared = [path for path in sorted(package_dir.rglob("*.py"))
              if path.relative_to(package_dir).parts[0] != TASKS]
    return matching_lines(shared, [pattern], package_dir)


def learner_string_hits(package_dir: Path) -> list[str]:
    """Lines anywhere in the package (tasks included) that compare a learner to a string."""
    return matching_lines(sorted(package_dir.rglob("*.py")), LEARNER_STRING_PATTERNS,
                          package_dir)


# ---------------------------------------------------------------------------------------------
# The rules on the real package
# ---------------------------------------------------------------------------------------------


def test_imports_follow_the_layers():
    """Rules 1-3 hold for retroscope itself."""
    violations = import_violations(PACKAGE_DIR)
    assert not violations, "\n".join([f"{len(violations)} broken import rule(s):", *violations])


def test_no_task_name_in_shared_code():
    """Rule 4: shared code never names a task."""
    hits = task_name_hits(PACKAGE_DIR, task_names())
    assert not hits, "\n".join([f"task names in shared code ({len(hits)} lines):", *hits])


def test_no_learner_compared_to_a_string():
    """Rule 5: no learner is chosen by comparing it to a string."""
    hits = learner_string_hits(PACKAGE_DIR)
    assert not hits, "\n".join([f"learner compared to a string ({len(hits)} lines):", *hits])


# ---------------------------------------------------------------------------------------------
# The checker itself: it must find broken rules in small fake packages
# ---------------------------------------------------------------------------------------------


def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write a fake retroscope package, {path inside the package: source}; return its folder.

    Every folder gets an ``__init__.py`` (empty unless given) and the root one holds only
    ``__version__`` unless given.
    """
    package = tmp_path / PACKAGE
    for name, source in {"__init__.py": '__version__ = "0"\n', **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in [path for path in package.rglob("*") if path.is_dir()]:
        (folder / "__init__.py").touch()
    return package


BROKEN_PACKAGES = {
    "upward import inside a function": (
        {"core/a.py": "def load():\n    from retroscope.train import b\n    return b\n",
         "train/b.py": ""},
        ["retroscope/core/a.py:2", "imports retroscope.train.b", "upward import"],
    ),
    "circle of two modules in one layer": (
        {"data/x.py": "from retroscope.data import y\n",
         "data/y.py": "def f():\n    import retroscope.data.x\n"},
        ["import circle between modules retroscope.data.x, retroscope.data.y",
         "retroscope/data/x.py:1: imports retroscope.data.y",
         "retroscope/data/y.py:2: imports retroscope.data.x"],
    ),
    "shared module importing a task": (
        {"core/registry.py": "import retroscope.tasks.foo\n",
         "tasks/foo/__init__.py": "TASK = None\n"},
        ["retroscope/core/registry.py:1", "imports retroscope.tasks.foo", "tasks are leaves"],
    ),
    "relative import that resolves upward": (
        {"core/sub/mod.py": "from ...train import b\n", "train/b.py": ""},
        ["retroscope/core/sub/mod.py:1", "imports retroscope.train.b", "upward import"],
    ),
    "relative upward import in an __init__": (
        {"data/__init__.py": "from ..evaluate import report\n", "evaluate/report.py": ""},
        ["retroscope/data/__init__.py:1", "imports retroscope.evaluate.report", "upward import"],
    ),
    "upward import under TYPE_CHECKING": (
        {"io/a.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from retroscope.core.params import Record
            """,
         "core/params.py": ""},
        ["retroscope/io/a.py:3", "imports retroscope.core.params", "upward import"],
    ),
    "shared module importing the tasks with importlib": (
        {"core/task.py": """\
            import importlib
            def load_all():
                importlib.import_module("retroscope.tasks")
            """},
        ["retroscope/core/task.py:3", "imports retroscope.tasks ", "tasks are leaves"],
    ),
    "task importing another task": (
        {"tasks/a/fit.py": "from retroscope.tasks.b import shots\n", "tasks/b/shots.py": ""},
        ["retroscope/tasks/a/fit.py:1", "imports retroscope.tasks.b.shots",
         "task 'a' may not import task 'b'"],
    ),
    "tasks/__init__.py importing a task": (
        {"tasks/__init__.py": "from retroscope.tasks.a import TASK\n",
         "tasks/a/__init__.py": "TASK = 1\n"},
        ["retroscope/tasks/__init__.py:1", "imports retroscope.tasks.a", "must import no task"],
    ),
    "task importing the command line": (
        {"tasks/a/app.py": "from retroscope.cli import app\n", "cli.py": "app = None\n"},
        ["retroscope/tasks/a/app.py:1", "imports retroscope.cli", "front end 'cli'"],
    ),
    "circle between two top-level packages": (
        {"data/a.py": "from retroscope.compute import b\n", "compute/b.py": "",
         "compute/c.py": "from retroscope.data import d\n", "data/d.py": ""},
        ["import circle between top-level packages compute, data",
         "retroscope/compute/c.py:1: imports retroscope.data.d",
         "retroscope/data/a.py:1: imports retroscope.compute.b"],
    ),
    "package in no layer": (
        {"widgets/knob.py": "from retroscope.core import params\n", "core/params.py": ""},
        ["retroscope/widgets/", "unknown layer 'widgets'"],
    ),
    "package root importing a layer": (
        {"__init__.py": "from retroscope.core import params\n", "core/params.py": ""},
        ["retroscope/__init__.py:1", "imports retroscope.core.params", "package root"],
    ),
}


@pytest.mark.parametrize("case", BROKEN_PACKAGES)
def test_checker_reports_broken_rules(tmp_path, case):
    """Each fake package breaks one rule; one message must name file, line, module and rule."""
    files, expected = BROKEN_PACKAGES[case]
    violations = import_violations(fake_package(tmp_path, files))
    assert any(all(part in message for part in expected) for message in violations), (
        f"expected a message containing {expected}, got:\n" + "\n".join(violations))


def test_checker_accepts_a_well_layered_package(tmp_path):
    """Downward, same-layer, relative, deferred and __version__ imports are all allowed."""
    package = fake_package(tmp_path, {
        "io/atomic.py": "import os\n",
        "core/params.py": "from retroscope.io import atomic\nfrom retroscope import __version__\n",
        "data/shards.py": "from ..core.params import Record\nfrom . import merge\n",
        "data/merge.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from retroscope.core import params
            """,
        "compute/campaign.py": "from retroscope.data.shards import Manifest\n",
        "models/__init__.py": "from retroscope.models.net import build\n",
        "models/net.py": "from retroscope.models.parts import block\n",
        "models/parts.py": "",
        "train/loop.py": "from retroscope.models import net\n",
        "learners/registry.py": "",
        "learners/regression/fit.py": """\
            from retroscope.train import loop
            from .. import registry
            """,
        "infer/predict.py": "def load():\n    from retroscope.learners.regression import fit\n",
        "evaluate/report.py": "from retroscope.infer import predict\n",
        "cli.py": "import retroscope.evaluate.report\n",
        "demo.py": "from retroscope.cli import app\n",
        "tasks/__init__.py": '"""Tasks are found through entry points."""\n',
        "tasks/a/__init__.py": "from retroscope.tasks.a import sim\n",
        "tasks/a/sim.py": "from retroscope.evaluate import report\nfrom . import fit\n",
        "tasks/a/fit.py": "from retroscope.learners.regression import fit\n",
    })
    assert import_violations(package) == []


def test_task_name_check_can_fail(tmp_path):
    """Whole-word task names are found outside tasks/ only, in code and comments alike."""
    package = fake_package(tmp_path, {
        "core/a.py": "x = 1  # fit the MOT\nremote = 2\n",
        "infer/b.py": '"""Works for Clouds too."""\n',
        "tasks/clouds/fit.py": "CLOUDS = 1  # clouds\n",
    })
    assert task_name_hits(package, ["clouds", "mot"]) == [
        "retroscope/core/a.py:1: x = 1  # fit the MOT",
        'retroscope/infer/b.py:1: """Works for Clouds too."""',
    ]


def test_learner_string_check_can_fail(tmp_path):
    """Comparisons of a learner with a string are found, also inside tasks."""
    package = fake_package(tmp_path, {
        "cli.py": "if _run_learner(run) == 'detection':\n    pass\n",
        "train/fit.py": "use = getattr(task, 'learner', 'regression')\nlearner = make()\n",
        "tasks/a/task.py": 'ok = "detection" != task.learner\n',
    })
    assert learner_string_hits(package) == [
        "retroscope/cli.py:1: if _run_learner(run) == 'detection':",
        'retroscope/tasks/a/task.py:1: ok = "detection" != task.learner',
        "retroscope/train/fit.py:1: use = getattr(task, 'learner', 'regression')",
    ]
