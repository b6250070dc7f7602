"""Build the labeled retrieval set ``data/python_docs_retrieval.jsonl`` from the Python docs.

The corpus is the Python 3.11 documentation as shipped in Debian's ``python3.11-doc`` package
(reST sources under ``/usr/share/doc/python3.11/html/_sources/``; PSF license). Two kinds of
labeled queries, each with exactly one relevant document (relevance 1):

* FAQ (``faq/*.rst.txt``): every entry is a question (a section title) and its answer (the
  section's text). Document ``faq/<file>:<n>`` is the answer; the query is the question.
  Answers shorter than 80 characters ("See the next question.") and repeated questions are
  left out.
* Library modules (``library/*.rst.txt``): document ``library/<module>`` is the module
  page's introduction (the text before its first subsection, at most 3000 characters); the
  query is the module's ``:synopsis:`` line (e.g. "Heap queue algorithm (a.k.a. priority
  queue)."). Pages without a synopsis, or with an introduction under 200 characters, are
  left out.

In documents, reST markup is simplified (roles and literals unwrapped, directives and labels
dropped - so the synopsis itself is not in the document) and section titles are NOT
included. Output: one JSON object per line, ``{"type": "doc", "id", "text"}`` or
``{"type": "query", "id", "text", "relevant": [doc id], "kind": "faq" | "synopsis"}``.
Run it where the package can be downloaded::

    apt-get download python3.11-doc && dpkg-deb -x python3.11-doc_*.deb /tmp/pydoc
    python benchmarks/build_python_faq.py /tmp/pydoc/usr/share/doc/python3.11/html/_sources
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HEADING_CHARS = set("=-^~\"'`#*+")
ROLE = re.compile(r":[\w:.-]+:`([^`<]*?)\s*(?:<[^`>]*>)?`")
LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`_+")
LITERAL = re.compile(r"``(.+?)``")


def clean(text: str) -> str:
    out: list[str] = []
    skip_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if stripped and indent <= skip_indent:
                skip_indent = None
            else:
                continue
        if stripped.startswith(".. ") and not stripped.startswith(".. code"):
            skip_indent = indent  # a directive or a label and its body
            continue
        if stripped.startswith(".. code"):
            continue
        line = ROLE.sub(lambda m: m.group(1), line)
        line = LINK.sub(lambda m: m.group(1), line)
        line = LITERAL.sub(lambda m: m.group(1), line)
        out.append(line.rstrip())
    text = "\n".join(out)
    text = re.sub(r"::\n", ":\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def sections(path: Path) -> list[tuple[str, str, str]]:
    """``(underline char, title, body)`` of every section of a reST file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    heads: list[tuple[int, str, str]] = []
    for i in range(1, len(lines)):
        under = lines[i].strip()
        title = lines[i - 1].strip()
        if (
            title
            and len(under) >= max(3, len(title))
            and set(under) <= HEADING_CHARS
            and len(set(under)) == 1
            and not set(title) <= HEADING_CHARS
        ):
            heads.append((i - 1, under[0], title))
    out = []
    for n, (start, char, title) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[start + 2 : end])
        # a title with an overline: the next line is the overline of the following title
        out.append((char, title, body))
    return out


SYNOPSIS = re.compile(r"^\s*:synopsis:\s*(.+(?:\n\s{4,}\S.*)*)", re.M)


def faq(root: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    docs: list[dict[str, object]] = []
    queries: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in sorted((root / "faq").glob("*.rst.txt")):
        name = path.name.removesuffix(".rst.txt")
        n = 0
        for char, title, body in sections(path):
            if char == "=":
                continue  # the file's title and category headings
            answer = clean(body)
            key = title.lower()
            if len(answer) < 80 or key in seen:
                continue
            seen.add(key)
            n += 1
            did = f"faq/{name}:{n}"
            docs.append({"type": "doc", "id": did, "text": answer})
            queries.append(
                {"type": "query", "id": f"q-{did}", "text": title, "relevant": [did], "kind": "faq"}
            )
    return docs, queries


def library(root: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    docs: list[dict[str, object]] = []
    queries: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in sorted((root / "library").glob("*.rst.txt")):
        raw = path.read_text(encoding="utf-8")
        m = SYNOPSIS.search(raw)
        if m is None:
            continue
        synopsis = clean(" ".join(part.strip() for part in m.group(1).splitlines()))
        secs = sections(path)
        if not secs:
            continue
        intro = clean(secs[0][2])[:3000].strip()
        key = synopsis.lower()
        if len(intro) < 200 or len(synopsis) < 10 or key in seen:
            continue
        seen.add(key)
        did = f"library/{path.name.removesuffix('.rst.txt')}"
        docs.append({"type": "doc", "id": did, "text": intro})
        queries.append(
            {
                "type": "query",
                "id": f"q-{did}",
                "text": synopsis,
                "relevant": [did],
                "kind": "synopsis",
            }
        )
    return docs, queries


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/python3.11/html/_sources")
    fd, fq = faq(root)
    ld, lq = library(root)
    out = Path(__file__).parent / "data" / "python_docs_retrieval.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for r in [*fd, *ld, *fq, *lq]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(fd) + len(ld)} documents, {len(fq)} FAQ and {len(lq)} synopsis queries -> {out}")


if __name__ == "__main__":
    main()
