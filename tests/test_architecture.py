"""Imports go one way: the network contract, the Lava side and the event data load without torch,
and no module of the package imports (directly or through others) a module that imports it back."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lava_spikeformer", "event_data")

TORCH_FREE = ["lava_spikeformer.graph", "lava_spikeformer.lava.processes.models", "lava_spikeformer.lava.bindings",
              "lava_spikeformer.analysis.loihi", "lava_spikeformer.analysis.evaluation", "event_data",
              "event_data.transforms", "event_data.hardvs", "event_data.fmnist_dvs", "event_data.sources",
              "event_data.recordings",
              "lava_spikeformer.data.idx"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"heavy = sorted(m for m in ('torch', 'lava.lib.dl.slayer', 'timm') if m in sys.modules); "
            f"print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} loads {out.stdout.strip()}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """``{module: {modules it imports}}`` over the package, every import statement counted (also the
    ones inside functions: a lazy import is still a dependency). ``from pkg import name`` depends on
    ``pkg`` (unless the importer lives in ``pkg``) and, when ``name`` is a submodule, on ``pkg.name``."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[:len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                # a module inside ``module`` (``from . import sibling``) does not depend on its package's __init__
                inside = name.startswith(module + ".")
                targets = ([] if inside else [module]) + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_contract_depends_on_nothing_of_training_or_lava():
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("lava_spikeformer.graph"):
            outside = {d for d in deps if not d.startswith("lava_spikeformer.graph")} - {"lava_spikeformer.fileio"}
            assert not outside, f"{module} imports {outside}"
        if module.startswith("event_data"):
            assert all(d.startswith("event_data") or d in ("lava_spikeformer.data.idx", "lava_spikeformer.data",
                                                             "lava_spikeformer.graph.input", "lava_spikeformer")
                       or d.startswith("lava_spikeformer.graph") for d in deps), f"{module} imports {deps}"


@pytest.mark.parametrize("method, ok", [("tqdm", True), ("spawn", False)])
def test_lava_imports_after_the_start_method_was_fixed(method, ok):
    """lava-nc sets multiprocessing's start method when imported, which used to fail after any tqdm bar
    (building event frames, then running them on Lava); a non-fork method is refused by name."""
    fix = ("from tqdm.auto import tqdm; list(tqdm(range(2)))" if method == "tqdm"
           else "import multiprocessing; multiprocessing.set_start_method('spawn')")
    code = f"{fix}; import lava_spikeformer.lava.run, multiprocessing; print(multiprocessing.get_start_method())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if ok:
        assert out.returncode == 0 and out.stdout.strip() == "fork", out.stderr
    else:
        assert out.returncode != 0 and "start method to 'spawn' before importing Lava" in out.stderr
