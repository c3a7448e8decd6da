"""The layering of docs/architecture.md holds: import-linter's contract, no import cycle between
modules, and our own modules imported at the top of a module except where that would load a
heavy library (torch, transformers, ...) at import time: the command line imports each verb's
module when the verb runs, so `tuneloop --help` stays instant."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src" / "tuneloop"
HEAVY = {"torch", "transformers", "peft", "trl", "accelerate", "datasets", "optuna", "safetensors", "matplotlib", "presidio_analyzer", "spacy"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in SRC.rglob("*.py")}


def imported_names(node) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def top_level_imports(tree: ast.Module) -> list[str]:
    return [name for node in tree.body for name in imported_names(node)]


def heavy_modules(trees: dict[str, ast.Module]) -> set[str]:
    """Our modules whose import loads a heavy library, directly or through our modules they import at the top."""
    heavy = {name for name, tree in trees.items() if any(n.split(".")[0] in HEAVY for n in top_level_imports(tree))}
    grown = True
    while grown:
        grown = False
        for name, tree in trees.items():
            if name not in heavy and any(owner(n, trees) in heavy for n in top_level_imports(tree)):
                heavy.add(name)
                grown = True
    return heavy


def owner(imported: str, trees: dict[str, ast.Module]) -> str:
    """The module an import statement loads (``from tuneloop.store import versions`` -> its package)."""
    return imported if imported in trees else imported.rpartition(".")[0]


def function_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in top or isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are top level
            continue
        found += [(node.lineno, name) for name in imported_names(node) if name.startswith("tuneloop")]
    return found


def type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {child.lineno for child in ast.walk(node) if hasattr(child, "lineno")}
    return lines


def test_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("tuneloop", exclude_type_checking_imports=True)
    cycles = [
        (module, other)
        for module in graph.modules
        for other in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=other, imported=module)
    ]
    assert not cycles, f"import cycles through: {sorted(cycles)[:10]}"


def test_own_modules_are_imported_at_the_top():
    trees = modules()
    heavy = heavy_modules(trees)
    misplaced = []
    for name, tree in trees.items():
        hidden = type_checking_lines(tree)
        for line, imported in function_level_imports(tree):
            if line not in hidden and not ({imported, owner(imported, trees)} & heavy):
                misplaced.append(f"{name}:{line} imports {imported} inside a function")
    assert not misplaced, "\n".join(misplaced)


def test_heavy_modules_stay_out_of_help():
    code = "import sys, tuneloop.cli; print(sorted(m for m in %r if m in sys.modules))" % sorted(HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"`tuneloop --help` loads {result.stdout.strip()}"
