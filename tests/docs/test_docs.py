"""The documentation as a user reads it: its code runs, its links lead somewhere.

Which code blocks run (the slow tests):

- Pages: README.md and docs/python_api.md (`RUN_PAGES`).
- Fenced blocks whose language is `python`, `bash` or `sh`; other languages
  (`text`, `console`, none) are output or illustration and never run.
- A block is skipped when the line just before its opening fence is
  `<!-- not run -->` (README's Quickstart: a 6-minute training run and the
  whole test suite). Nothing else skips a block.
- A page's blocks run top to bottom, in one fresh Python process
  (`sys.executable`) started in an empty temporary directory: `python`
  blocks are executed in one shared namespace (a later block sees an earlier
  block's names, as a reader assumes), and each `bash`/`sh` block runs in
  the same directory through `bash -e`, with the interpreter's directory
  first on PATH (so `keras-lm` is the console script beside it) and this
  checkout first on PYTHONPATH (so the code tested is this checkout's).
- A page with no block to run fails: a page that lost its code would
  otherwise pass silently.

The fast test checks every relative link (and `#anchor`) in README.md and
docs/*.md.
"""

import os
import re

import pytest

from page_runner import FENCE, ROOT, code_blocks, read, run_page, runnable_blocks

RUN_PAGES = ["README.md", os.path.join("docs", "python_api.md")]


@pytest.mark.slow
def test_readme_code_runs(tmp_path):
    run_page("README.md", tmp_path)


@pytest.mark.slow
def test_python_api_page_code_runs(tmp_path):
    run_page(os.path.join("docs", "python_api.md"), tmp_path)


def test_readme_quickstart_is_the_two_ci_commands():
    """README's Quickstart: exactly two not-run commands, the second being `.ci/run`'s."""
    text = read("README.md")
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in code_blocks(quickstart) if b[0] == "bash" and b[3]]
    commands = [
        [line for line in code.splitlines() if line.strip() and not line.startswith("#")]
        for _, code, _, _ in blocks
    ]
    assert len(blocks) == 2, blocks
    assert [len(c) for c in commands] == [1, 1], commands
    assert commands[0][0].endswith("keras-lm train"), commands[0]
    # .ci/run runs that command as it is written (then the browser tests).
    ci_lines = read(os.path.join(".ci", "run")).strip().splitlines()
    assert commands[1][0] in ci_lines, (commands[1][0], ci_lines)


# --- links -----------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def doc_pages():
    docs = os.path.join(ROOT, "docs")
    return ["README.md"] + sorted(
        os.path.join("docs", name) for name in os.listdir(docs) if name.endswith(".md")
    )


def prose(text):
    """`text` without fenced blocks and inline code (links there are not links)."""
    kept, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.lstrip().startswith(fence):
            fence = None
        elif fence is None:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def anchors(text):
    """GitHub's anchors of the headings of a Markdown text."""
    result = set()
    for line in prose(text).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            result.add(slug)
    return result


@pytest.mark.parametrize("page", doc_pages())
def test_relative_links_point_at_existing_files(page):
    text = read(page)
    broken = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path))
        if path and not os.path.exists(resolved):
            broken.append(f"{target} (no {os.path.relpath(resolved, ROOT)})")
            continue
        if anchor and (not path or resolved.endswith(".md")):
            with open(resolved if path else os.path.join(ROOT, page), encoding="utf-8") as f:
                if anchor not in anchors(f.read()):
                    broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{page}: broken links: {broken}"


def test_the_pages_run_here_have_code():
    for page in RUN_PAGES:
        assert runnable_blocks(page), page
