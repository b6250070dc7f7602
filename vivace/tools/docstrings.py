"""Parse a function docstring into a summary and per-parameter descriptions.

Understands the three common styles: Google (``Args:``), NumPy (``Parameters`` + dashes)
and Sphinx (``:param name:``). Pure string work, no imports beyond ``re``.
"""

from __future__ import annotations

import re

__all__ = ["parse_docstring"]

_GOOGLE_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns|Return|Yields|Raises|Examples?|Notes?|Attributes)\s*:\s*$"
)
_GOOGLE_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^-{3,}\s*$")
_NUMPY_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?::\s*(.*))?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\*{0,2}\w+)\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:(type|rtype|returns?|raises?|param)\b")
_PARAM_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments"}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Return ``(description, {param: description})`` from a cleaned docstring."""
    if not doc:
        return "", {}
    lines = doc.expandtabs().splitlines()
    if any(_SPHINX_PARAM.match(line.strip()) for line in lines):
        return _parse_sphinx(lines)
    for i in range(len(lines) - 1):
        if lines[i].strip() and _NUMPY_UNDERLINE.match(lines[i + 1].strip()):
            return _parse_numpy(lines)
    return _parse_google(lines)


def _join(chunks: list[str]) -> str:
    return " ".join(c.strip() for c in chunks if c.strip())


def _summary(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_google(lines: list[str]) -> tuple[str, dict[str, str]]:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    param_indent = 0
    for line in lines:
        stripped = line.strip()
        m = _GOOGLE_SECTION.match(stripped)
        if m and _indent(line) == 0:
            section, current = m.group(1), None
            continue
        if section is None:
            desc.append(line)
            continue
        if section not in _PARAM_SECTIONS or not stripped:
            continue
        pm = _GOOGLE_PARAM.match(stripped)
        if pm and (current is None or _indent(line) <= param_indent):
            current = pm.group(1).lstrip("*")
            param_indent = _indent(line)
            params[current] = [pm.group(3)]
        elif current is not None:
            params[current].append(stripped)
    return _summary(desc), {k: _join(v) for k, v in params.items()}


def _parse_numpy(lines: list[str]) -> tuple[str, dict[str, str]]:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if i + 1 < len(lines) and stripped and _NUMPY_UNDERLINE.match(lines[i + 1].strip()):
            section, current = stripped, None
            i += 2
            continue
        if section is None:
            desc.append(line)
        elif section in _PARAM_SECTIONS and stripped:
            if _indent(line) == 0:
                pm = _NUMPY_PARAM.match(stripped)
                if pm:
                    for name in stripped.split(":", 1)[0].split(","):
                        current = name.strip().lstrip("*")
                        params[current] = []
            elif current is not None:
                params[current].append(stripped)
        i += 1
    return _summary(desc), {k: _join(v) for k, v in params.items()}


def _parse_sphinx(lines: list[str]) -> tuple[str, dict[str, str]]:
    desc: list[str] = []
    params: dict[str, list[str]] = {}
    current: str | None = None
    in_fields = False
    for line in lines:
        stripped = line.strip()
        pm = _SPHINX_PARAM.match(stripped)
        if pm:
            in_fields = True
            current = pm.group(1).lstrip("*")
            params[current] = [pm.group(2)]
        elif _SPHINX_FIELD.match(stripped):
            in_fields, current = True, None
        elif not in_fields:
            desc.append(line)
        elif current is not None and stripped:
            params[current].append(stripped)
    return _summary(desc), {k: _join(v) for k, v in params.items()}
