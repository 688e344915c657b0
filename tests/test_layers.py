"""The package's layers: every import of a project module points down, there is no import circle, and a project
module is imported inside a function only where the checker is told why (none today)."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Bottom to top. A module may import its own layer's modules and any layer below it. io and exported import nothing
# of the project (exported must run without it), so every layer may use them.
LAYERS = ("cdp_jax.io", "cdp_jax.exported", "cdp_jax.nn", "cdp_jax.core", "cdp_jax.agents", "cdp_jax.envs",
          "cdp_jax.datasets", "cdp_jax.train", "cdp_jax.analysis", "cdp_jax", "experiments", "benchmarks")
ENTRY_POINTS = ("__main__",)        # `python -m` targets: imported by nothing, so they may use any layer


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return LAYERS.index(max(matches, key=len))


def project_imports(path: pathlib.Path):
    """``(imported module, line, inside a function)`` for each import of a project module in ``path``."""
    tree = ast.parse(path.read_text())
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
            names = [f"{base}.{a.name}" for a in node.names]
            targets = [n for n in names if (ROOT / (n.replace(".", "/") + ".py")).exists()
                       or (ROOT / n.replace(".", "/") / "__init__.py").exists()] or [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in ("cdp_jax", "experiments", "benchmarks"):
                yield target, node.lineno, id(node) in inside


def sources():
    for top in ("cdp_jax", "experiments", "benchmarks"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_every_import_points_down_or_within_its_layer():
    upward = []
    for path in sources():
        here = module_name(path)
        if here.rpartition(".")[2] in ENTRY_POINTS:
            continue
        for target, line, _ in project_imports(path):
            if layer(target) > layer(here):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_project_modules_are_imported_at_module_level():
    nested = [f"{path.relative_to(ROOT)}:{line} imports {target} inside a function"
              for path in sources() for target, line, inside in project_imports(path) if inside]
    assert not nested, "\n".join(nested)


def test_there_is_no_import_circle():
    """Importing ``a.b.c`` first runs the ``__init__`` of ``a`` and ``a.b``: those count as imports too, but for the
    packages the importer itself lies in (Python has started them already)."""
    graph = {}
    for path in sources():
        here = module_name(path)
        targets = graph.setdefault(here, set())
        for target, _, _ in project_imports(path):
            parts = target.split(".")
            targets.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                           if not here.startswith(p + ".") and p != here)
    done, stack, circles = set(), [], []

    def visit(node):
        if node in stack:
            circles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))
