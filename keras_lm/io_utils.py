"""Writing outputs atomically, so a crash never leaves a half-written file."""

import contextlib
import json
import os
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it to `path` on success.

    Works for files and directories (e.g. a SavedModel). The temporary keeps
    the extension of `path` (Keras insists on `.keras`). On error the
    temporary is removed and `path` is left as it was.

    Example:
    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_path(target) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(target).read()
    'done'
    """
    directory, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    tmp = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{extension}")
    _remove(tmp)
    try:
        yield tmp
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path`, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def write_bytes(path, content):
    """Writes `content` (bytes) to `path`, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
