"""The package's structure, checked from its source (README, Architecture):

- imports point one way: layers <- models <- tasks <- training <- scripts, with errors,
  artifacts, schema, config, evaluation, plotting and optimizers below the tasks; data
  readers never import models or training; models import no reader; artifact writing
  imports no model or layer; the package never imports scripts;
- no module imports another module's private names (``from x import _y``, ``x._y``);
- no task module grows into a monolith again (about 400 lines at most);
- no docstring points to a file that is not in the repository.

Imports inside functions count as much as those at the top: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kerahep"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), path, is_pkg
    for path in sorted((REPO / "scripts").glob("*.py")):
        yield f"scripts.{path.stem}", path, path.stem == "__init__"


def _imports(name: str, path: Path, is_pkg: bool):
    """``(line, imported module, imported names)`` for every import of ``path``, absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module, [a.name for a in node.names]


def _is(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (modules the rule applies to, modules they must not import, why)
RULES = [
    (("kerahep",), ("scripts",), "the package never imports the command lines"),
    (("kerahep.layers",), ("kerahep.models", "kerahep.tasks", "kerahep.training", "kerahep.data",
                          "kerahep.saving"), "layers sit at the bottom of the model stack"),
    (("kerahep.models",), ("kerahep.tasks", "kerahep.training", "kerahep.data", "kerahep.saving"),
     "models/ imports no reader, task or trainer"),
    (("kerahep.data",), ("kerahep.models", "kerahep.layers", "kerahep.training", "kerahep.tasks",
                        "kerahep.saving"), "data readers never import models or training"),
    (("kerahep.tasks",), ("kerahep.training", "kerahep.prediction"),
     "tasks sit below the trainer and the scorer of new files (they drive them)"),
    (("kerahep.artifacts", "kerahep.errors", "kerahep.schema", "kerahep.config", "kerahep.overrides"),
     ("kerahep.models", "kerahep.layers", "kerahep.tasks", "kerahep.training", "kerahep.data",
      "kerahep.evaluation", "kerahep.plotting", "kerahep.saving"), "the bottom layer imports nothing above it"),
    (("kerahep.evaluation", "kerahep.plotting", "kerahep.optimizers"),
     ("kerahep.models", "kerahep.layers", "kerahep.tasks", "kerahep.training", "kerahep.data", "kerahep.saving"),
     "metrics, figures and optimizers sit below the tasks"),
]
# the one allowed upward reference: kerahep.config.Config.from_dict finds the task's presets
# by name through the registry, which loads the task packages lazily
ALLOWED = {("kerahep.config", "kerahep.registry")}
# old import paths kept for one release (lazy re-export, not a dependency of the module)
SHIMS = {("kerahep.evaluation", "kerahep.training")}


def test_imports_point_one_way():
    bad = []
    for name, path, is_pkg in _modules():
        for line, module, _ in _imports(name, path, is_pkg):
            if (name, module) in ALLOWED or any(_is(name, a) and _is(module, b) for a, b in SHIMS):
                continue
            for subjects, forbidden, why in RULES:
                if _is(name, *subjects) and _is(module, *forbidden):
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {module} ({why})")
    assert not bad, "\n".join(bad)


def test_no_private_name_is_imported_across_modules():
    bad = []
    for name, path, is_pkg in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        kerahep_aliases = set()
        for line, module, names in _imports(name, path, is_pkg):
            if not _is(module, "kerahep", "scripts"):
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {n} from {module}")
        for node in ast.walk(tree):  # a kerahep module or name bound to a private alias in another module
            if isinstance(node, ast.ImportFrom) and (node.level or _is(node.module or "", "kerahep")):
                for a in node.names:
                    if a.asname and a.asname.startswith("_") and not a.asname.startswith("__"):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} imports {a.name} as {a.asname}")
        for node in ast.walk(tree):  # names bound to kerahep modules, then their private attributes
            if isinstance(node, ast.ImportFrom) and (node.level or _is(node.module or "", "kerahep")):
                kerahep_aliases.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                kerahep_aliases.update((a.asname or a.name).split(".")[0] for a in node.names
                                       if _is(a.name, "kerahep"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in kerahep_aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("task", ["dy_electron", "electron_photon", "higgs_mae", "jet_ssl", "hcal_dqm"])
def test_each_task_is_a_package_of_small_modules(task):
    folder = PACKAGE / "tasks" / task
    assert folder.is_dir() and (folder / "__init__.py").exists(), f"{task} is not a package"
    assert not (PACKAGE / "tasks" / f"{task}.py").exists()
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in folder.glob("*.py")}
    assert {"config.py", "data.py", "task.py"} <= set(sizes), sorted(sizes)
    assert max(sizes.values()) <= 450, sizes


def test_no_docstring_points_to_a_file_outside_the_repository():
    bad = []
    for _, path, _ in _modules():
        text = path.read_text(encoding="utf-8")
        if "DESIGN.md" in text:
            bad.append(str(path.relative_to(REPO)))
    assert not bad, f"these refer to DESIGN.md, which is not in the repository: {bad}"


def test_relative_imports_are_resolved_so_the_rules_can_fail(tmp_path):
    """The direction rules see relative imports as absolute modules (else they could never fail)."""
    src = tmp_path / "mod.py"
    src.write_text("from ..data.higgs import x\nfrom . import dense\n\ndef f():\n    from ..training import train\n")
    found = [m for _, m, _ in _imports("kerahep.models.mod", src, False)]
    assert sorted(found) == ["kerahep.data.higgs", "kerahep.models", "kerahep.training"]
    pkg = [m for _, m, _ in _imports("kerahep.tasks.demo", src, True)]  # an __init__.py: its own package
    assert sorted(pkg) == ["kerahep.tasks.data.higgs", "kerahep.tasks.demo", "kerahep.tasks.training"]
