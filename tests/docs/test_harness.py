"""The docs harness itself: order and one namespace per file, skip markers with reasons,
failures named by file and line (in the Markdown), top-level await."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import DocFile, blocks_of

DOC = """# Title

```python
x = 1
```

Text.

<!-- doctest: skip (needs a GPU) -->
```python
import nothing_here
```

```python
async def twice(v):
    return v * 2
y = await twice(x)
```

```python
assert y == 2
open("made-here.txt", "w").write("ok")
```

```python
z = y + 1
undefined_name
```

```python
print("never")
```
"""


def test_blocks_are_found_with_lines_and_skips(tmp_path: Path) -> None:
    f = tmp_path / "doc.md"
    f.write_text(DOC)
    blocks = blocks_of(f, "doc.md")
    assert [b.line for b in blocks] == [3, 10, 14, 20, 25, 30]
    assert [b.skip for b in blocks] == [None, "needs a GPU", None, None, None, None]


def test_run_in_order_in_one_namespace_and_fail_with_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "doc.md"
    f.write_text(DOC)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    doc = DocFile(blocks_of(f, "doc.md"), cwd)
    doc.run_through(3)  # blocks 0..3, the skipped one not executed
    assert doc.namespace["y"] == 2
    assert (cwd / "made-here.txt").read_text() == "ok"  # ran in the file's directory
    with pytest.raises(AssertionError) as err:
        doc.run_through(4)
    msg = str(err.value)
    assert msg.startswith("doc.md:25: this ```python block failed")
    assert "doc.md:27: undefined_name" in msg and "NameError" in msg
    with pytest.raises(AssertionError, match=r"doc.md:30: not run because .*doc.md:25"):
        doc.run_through(5)


def test_a_skip_marker_needs_a_reason(tmp_path: Path) -> None:
    f = tmp_path / "doc.md"
    f.write_text("<!-- doctest: skip -->\n```python\nx = 1\n```\n")
    doc = DocFile(blocks_of(f, "doc.md"), tmp_path)
    with pytest.raises(AssertionError, match=r"doc\.md:2: a skip marker needs a reason"):
        doc.run_through(0)


def test_syntax_errors_point_into_the_markdown(tmp_path: Path) -> None:
    f = tmp_path / "doc.md"
    f.write_text("intro\n\n```python\nok = 1\nthis is not python\n```\n")
    doc = DocFile(blocks_of(f, "doc.md"), tmp_path)
    with pytest.raises(AssertionError, match=r"doc\.md:5: this is not python"):
        doc.run_through(0)
