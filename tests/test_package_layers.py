"""The package's structure: layers that import only downwards, short functions."""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_module_imports_a_higher_layer():
    # The contract in setup.cfg ([importlinter]); imports inside functions count.
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--config", "setup.cfg", "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout, result.stdout[-2000:]


MAX_FUNCTION_LINES = 80  # docstring included: a function that fits on a screen


def _function_lengths():
    """`{"subpackage/module.py:function": lines}` for every function in keras_lm/."""
    package = os.path.join(ROOT, "keras_lm")
    lengths = {}
    for directory, _, names in os.walk(package):
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, package).replace(os.sep, "/")
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    key = f"{relative}:{node.name}"
                    lengths[key] = max(lengths.get(key, 0), node.end_lineno - node.lineno + 1)
    return lengths


def test_package_functions_fit_on_a_screen():
    lengths = _function_lengths()
    assert "models/transformer_lm.py:__init__" in lengths  # the walk reaches subpackages
    too_long = [f"{key} ({length} lines)" for key, length in sorted(lengths.items())
                if length > MAX_FUNCTION_LINES]
    assert not too_long, too_long
