"""HTML to Markdown-ish text with the standard library's parser (headings become ``#``
lines so the Markdown chunker keeps them; scripts, styles and navigation are dropped)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = {"script", "style", "noscript", "template", "svg", "head", "nav", "footer"}
_BLOCK = {
    "p", "div", "section", "article", "main", "header", "aside", "blockquote", "pre",
    "table", "tr", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "form", "hr",
}  # fmt: skip
_HEADING = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.title: list[str] = []
        self.in_title = False
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        elif self.skip:
            return
        elif tag in _HEADING:
            self.out.append("\n\n" + "#" * _HEADING[tag] + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in _BLOCK:
            if tag == "pre":
                self.pre += 1
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "title":
            self.in_title = False
        elif self.skip:
            return
        elif tag in _HEADING or tag in _BLOCK:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> tuple[str, str | None]:
    """``(text, title)`` of an HTML page."""
    p = _Text()
    p.feed(html)
    p.close()
    text = "".join(p.out)
    lines = [ln.strip() if not ln.startswith("    ") else ln.rstrip() for ln in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = re.sub(r"\s+", " ", "".join(p.title)).strip() or None
    return text, title
