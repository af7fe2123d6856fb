"""Runs a Markdown page's code blocks as a reader would (the rules: tests/docs/test_docs.py).

A module beside conftest.py, not a test: the docs tests and the slow explain
tests both run pages with it."""

import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
NOT_RUN = "<!-- not run -->"
RUN_LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash"}

FENCE = re.compile(r"^ *(```+|~~~+)\s*([\w+-]*)")  # fences may sit in list items


def read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def code_blocks(text):
    """`(language, code, line, skipped)` of every fenced block of a Markdown text."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.group(1), match.group(2).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append(lines[i])
            i += 1
        previous = lines[start - 1].strip() if start > 0 else ""
        code = textwrap.dedent("\n".join(body) + "\n")
        blocks.append((language, code, start + 1, previous == NOT_RUN))
        i += 1
    return blocks


def runnable_blocks(page):
    """`(kind, code, line)` of the blocks of `page` that run, in order."""
    return [
        (RUN_LANGUAGES[language], code, line)
        for language, code, line, skipped in code_blocks(read(page))
        if language in RUN_LANGUAGES and not skipped
    ]


# Runs the blocks (a JSON list) in order; stops at the first failure with its
# page line in the message.
DRIVER = textwrap.dedent("""
    import json, subprocess, sys, traceback
    blocks = json.load(open(sys.argv[1], encoding="utf-8"))
    page = sys.argv[2]
    namespace = {"__name__": "__main__"}
    for kind, code, line in blocks:
        print(f"--- {page}:{line} ({kind})", flush=True)
        print(f"--- {page}:{line} ({kind})", file=sys.stderr, flush=True)
        if kind == "python":
            try:
                exec(compile(code, f"{page}:{line}", "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                sys.exit(f"{page}: the python block at line {line} failed")
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            if subprocess.run(["bash", "-e", "-c", code]).returncode:
                sys.exit(f"{page}: the bash block at line {line} failed")
""")


def run_page(page, tmp_path):
    import json

    blocks = runnable_blocks(page)
    assert blocks, f"{page}: no python or bash block to run (a page's code must be tested)"
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "blocks.json"), page],
        cwd=work, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, (
        f"{page} failed (exit code {result.returncode}).\n"
        f"--- stdout (end):\n{result.stdout[-4000:]}\n--- stderr (end):\n{result.stderr[-8000:]}"
    )
    return result
