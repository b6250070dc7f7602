"""Keep secrets out of spans: known key values, key-shaped strings, secret-named fields.

Applied to every error message and, when content capture is on, to prompts, completions and
tool arguments/results before a span is queued, so no exporter ever sees them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
_SECRET_FIELD = re.compile(
    r"^(authorization|proxy-authorization|x-api-key|api[-_]?key|.*_api_key|apikey|password|passwd|"
    r"secret|.*_secret|client_secret|token|access_token|refresh_token|id_token|cookie|set-cookie|"
    r"x-goog-api-key|private_key)$",
    re.I,
)
_PATTERNS = re.compile(
    r"(?:"
    r"sk-(?:ant-|proj-|or-)?[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic / OpenRouter keys
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|xox[abpors]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWTs
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/\-]{12,}=*"  # bearer tokens
    r"|(?<=[Bb]asic )[A-Za-z0-9+/]{12,}=*"  # basic auth
    r"|(?:(?<=api_key=)|(?<=apikey=)|(?<=token=)|(?<=key=)|(?<=password=)|(?<=secret=))[^&\s\"']{6,}"
    r")"
)


class Redactor:
    """Replaces secrets with ``[REDACTED]``.

    Args:
        secrets: Literal values to remove (e.g. keys you pass in code).
        from_env: Also remove the values of environment variables whose names look secret
            (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``...), read once here.
    """

    __slots__ = ("_values",)

    def __init__(self, secrets: Iterable[str] = (), *, from_env: bool = True) -> None:
        values = {s for s in secrets if s and len(s) >= 6}
        if from_env:
            for k, v in os.environ.items():
                if v and len(v) >= 8 and _SECRET_ENV.search(k):
                    values.add(v)
        # longest first, so a secret containing another is removed whole
        self._values = tuple(sorted(values, key=len, reverse=True))

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 6:
            self._values = tuple(sorted({*self._values, secret}, key=len, reverse=True))

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, REDACTED)
        return _PATTERNS.sub(REDACTED, s)

    def value(self, v: Any) -> Any:
        """A copy of ``v`` (JSON-like) with secret-named fields and secret strings removed."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {
                k: REDACTED
                if isinstance(k, str) and _SECRET_FIELD.match(k) and v[k]
                else self.value(x)
                for k, x in v.items()
            }
        if isinstance(v, list | tuple):
            return [self.value(x) for x in v]
        return v

    def json(self, v: Any, limit: int) -> str:
        """``v`` redacted, as JSON text of at most ``limit`` characters."""
        try:
            text = json.dumps(self.value(v), default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = self.text(str(v))
        return text if len(text) <= limit else text[:limit] + "...(truncated)"
