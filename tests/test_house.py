"""The house: no import cycles inside kerasrnn/, runtime/ free of training and export code, the `kerasrnn`
command, and entry-point folders that are not installed packages."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """{module: modules of the same package it imports}, from every import statement (function-level ones too).
    `from pkg.sub import name` counts as an import of `pkg.sub.name` when that is a module, else of `pkg.sub`."""
    base, pkg = package_dir.parent, package_dir.name
    modules = {}
    for path in package_dir.rglob("*.py"):
        name = ".".join(path.relative_to(base).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    parts = package.split(".")
                    source = ".".join(parts[: len(parts) - node.level + 1] + ([source] if source else []))
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            else:
                continue
            targets |= {resolve(n) for n in names if n.split(".")[0] == pkg}
        # The top package's __init__ re-exports; importing it for its side effects (registration) is no edge.
        graph[module] = {t for t in targets if t and t != module and t != pkg}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_kerasrnn_has_no_import_cycles():
    assert cycles(import_graph(ROOT / "kerasrnn")) == []


def test_runtime_imports_no_training_or_export_code():
    graph = import_graph(ROOT / "kerasrnn")
    bad = {(m, t) for m, ts in graph.items() if m.startswith("kerasrnn.runtime") for t in ts
           if t.startswith(("kerasrnn.trainers", "kerasrnn.export"))}
    assert bad == set()


# The rooms, bottom first (README "Where things live"); a module imports only its own room and rooms before it.
ROOMS = [("files", "safe_load"), ("text",), ("data",), ("layers", "optimizers", "losses"), ("models",), ("config",),
         ("preprocessor",), ("run", "metrics"), ("embedder", "contexts"), ("runtime",), ("trainers",), ("export",), ("cli",)]


def _room(module: str) -> int:
    parts = module.split(".")
    return next(i for i, names in enumerate(ROOMS) if len(parts) > 1 and parts[1] in names)


def test_rooms_import_only_downward():
    upward = {(m, t) for m, ts in import_graph(ROOT / "kerasrnn").items() if m != "kerasrnn" for t in ts
              if _room(t) > _room(m)}
    assert upward == set()


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def _clean_env():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_kerasrnn_command_lists_its_subcommands():
    command = Path(sys.executable).parent / "kerasrnn"
    proc = subprocess.run([str(command), "--help"], capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for sub in ("train", "evaluate", "export", "benchmark", "predict", "embed"):
        assert f"    {sub}" in proc.stdout
    proc = subprocess.run([str(command), "export", "--help"], capture_output=True, text=True, env=_clean_env(),
                          timeout=120)
    assert proc.returncode == 0 and "--run-dir" in proc.stdout and "--prune" in proc.stdout


def test_entry_point_folders_are_not_installed_packages(tmp_path):
    for name in ("training", "deploy", "benchmarks"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True,
                              env=_clean_env(), timeout=120)
        assert proc.returncode != 0 and "No module named" in proc.stderr, name
    proc = subprocess.run([sys.executable, "-m", "training.train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env=_clean_env(), timeout=120)
    assert proc.returncode == 0 and "--output-dir" in proc.stdout
