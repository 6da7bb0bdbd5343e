"""The package's folders are its architecture: each subpackage imports only those below it,
and no module or function grows past what a reader takes in at once."""

import ast

from tests.conftest import PACKAGE, PROJECT_ROOT, imported_modules

# Lowest first: a subpackage may import its own modules and those of the layers before it.
LAYERS = (
    ("core",),
    ("data", "models", "distribute"),
    ("config",),
    ("training", "calibration"),
    ("inference",),
    ("reporting", "deploy"),
    ("audit", "labelling"),
    ("review",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MOST_MODULE_LINES, MOST_FUNCTION_LINES = 250, 60


def package_modules():
    return sorted((PROJECT_ROOT / PACKAGE).rglob("*.py"))


def subpackage(path_or_name):
    parts = path_or_name.split(".") if isinstance(path_or_name, str) else path_or_name.parts
    return parts[1] if len(parts) > 2 and parts[0] == PACKAGE else None


def test_every_subpackage_has_a_layer():
    folders = {
        path.parent.relative_to(PROJECT_ROOT).parts[1]
        for path in package_modules()
        if path.parent.name != PACKAGE
    }
    assert folders == set(RANK)


def test_no_subpackage_imports_one_above_it():
    upward = []
    for path in package_modules():
        own = subpackage(path.relative_to(PROJECT_ROOT))
        if own is None:  # __main__ and __init__ at the top: they may use anything
            continue
        for name in imported_modules(path):
            other = subpackage(name)
            if other is not None and RANK[other] > RANK[own]:
                upward.append(f"{path.relative_to(PROJECT_ROOT)} imports {name}")
    assert upward == []


def test_the_modules_import_one_another_without_a_cycle():
    """Within a layer too: each module imports only modules that do not import it back."""
    graph = {}
    for path in package_modules():
        name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {imported for imported in imported_modules(path) if imported != name}
    done, active = set(), []

    def visit(name):
        if name in active:
            raise AssertionError(" -> ".join([*active[active.index(name) :], name]))
        if name in done or name not in graph:
            return
        active.append(name)
        for imported in sorted(graph[name]):
            if not name.startswith(imported + "."):  # a module's own package runs first: not a cycle
                visit(imported)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_module_or_function_is_too_long_to_read_at_once():
    too_long = []
    for path in package_modules():
        source = path.read_text()
        name = path.relative_to(PROJECT_ROOT).as_posix()
        if len(source.splitlines()) > MOST_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MOST_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name} {length} lines")
    assert too_long == []
