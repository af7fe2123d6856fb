"""Built-in labelled data: which standard-library package a function comes from.

Made from the built-in corpus (`keras_lm.data.corpora.pystdlib_files`, the
standard library of the running Python), no download, by this rule:

1. the classes are the top-level packages `CLASSES` (each present in
   Python 3.10 to 3.13, each with 400+ functions);
2. a row's text is the name of a function or method defined anywhere in
   the package's `.py` files (`def` and `async def`, read with `ast`), its
   label the package;
3. names defined in more than one of the packages (`__init__`, `run`,
   `close`...) are dropped, as are names starting with `__` (protocol
   methods say nothing of their package) and names longer than
   `MAX_NAME_LENGTH` characters; each name counts once per package;
4. every class keeps the same number of names, `min(per_class, the
   smallest class's count)`: those whose SHA-256 of `"label:name"` sorts
   first; rows are ordered by the same hash (classes interleaved).

Names are short (about 12 characters): 8 labelled examples and a query fit
in the 256-byte context of the quickstart model, which the few-shot probe
needs. `CLASSIFY_STDLIB` is the recipe: the data and the training settings
of `keras-lm finetune --recipe=classify_stdlib`.

Example:
>>> rows = stdlib_label_rows(per_class=20)
>>> len(rows), sorted({row["label"] for row in rows}) == sorted(CLASSES)
(100, True)
"""

import ast
import functools
import hashlib
import os
import sysconfig

from keras_lm.data.corpora import pystdlib_files

CLASSES = ("asyncio", "email", "multiprocessing", "unittest", "xml")
DEFAULT_PER_CLASS = 300
# Longer names are dropped: 8 examples and a query must fit a 256-byte context.
MAX_NAME_LENGTH = 20


def stdlib_label_rows(per_class=DEFAULT_PER_CLASS, classes=CLASSES):
    """The rows (`{"text": name, "label": package}` dicts) made by the module's rule."""
    names = package_function_names(tuple(classes))
    owners = {}
    for package, found in names.items():
        for name in found:
            owners.setdefault(name, set()).add(package)
    kept = {package: sorted((name for name in found
                             if len(owners[name]) == 1 and not name.startswith("__")
                             and len(name) <= MAX_NAME_LENGTH),
                            key=lambda name, p=package: _hash(p, name))
            for package, found in names.items()}
    count = min(per_class, *(len(found) for found in kept.values()))
    rows = [{"text": name, "label": package}
            for package, found in kept.items() for name in found[:count]]
    return sorted(rows, key=lambda row: _hash(row["label"], row["text"]))


@functools.lru_cache(maxsize=4)
def package_function_names(classes=CLASSES):
    """`{package: frozenset of function names}` from the packages' `.py` files in the corpus."""
    root = sysconfig.get_paths()["stdlib"]
    names = {package: set() for package in classes}
    for path in pystdlib_files():
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) < 2 or parts[0] not in names:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            source = f.read()
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a file for another Python version: not ours to read
            continue
        names[parts[0]].update(node.name for node in ast.walk(tree)
                               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return {package: frozenset(found) for package, found in names.items()}


def _hash(label, name):
    return hashlib.sha256(f"{label}:{name}".encode()).hexdigest()


# `keras-lm finetune --recipe=classify_stdlib` (its entry in
# `keras_lm.adaptation.recipes.FINETUNE_RECIPES`): the data and the settings
# of a `ClassifierConfig` (`ClassifierConfig.from_recipe("classify_stdlib",
# ...)`: any setting given overrides it). Tuned on the quickstart model to run in well under
# 6 minutes on 2 cores (BENCHMARKS.md, "The classifier on the built-in labels").
CLASSIFY_STDLIB = dict(
    base_dir="saved_models/quickstart",
    output_dir="saved_models/classify_stdlib",
    data="classify_stdlib",  # BUILTIN_DATA's name: config.json records it as such
    text_key="text",
    label_key="label",
    pooling="mean",  # as accurate as `last` here, and a lower validation loss
    steps=300,
    batch_size=32,
    learning_rate=1e-3,
    max_length=48,
    dropout=0.1,
)

# Data sets known by name where labelled data is expected (`data="classify_stdlib"`).
BUILTIN_DATA = {"classify_stdlib": stdlib_label_rows}
