"""Built-in corpora: real text present on every machine, no download."""

import os
import sysconfig

_EXCLUDED_DIRS = {"test", "tests", "idlelib", "site-packages", "__pycache__"}

CORPORA = ("pystdlib",)


def pystdlib_files():
    """The `*.py` files of the running Python's standard library.

    Test suites, `idlelib` and `site-packages` are left out: about 670 files
    and 11 MB of real source code on Python 3.11.

    Example:
    >>> len(pystdlib_files()) > 100
    True
    """
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS)
        files += [os.path.join(directory, n) for n in sorted(names) if n.endswith(".py")]
    return files


def corpus_files(name):
    """The files of the built-in corpus `name` (see `CORPORA`)."""
    if name == "pystdlib":
        return pystdlib_files()
    raise ValueError(f"unknown corpus {name!r}; choose from {CORPORA}")
