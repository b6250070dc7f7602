"""The model catalog: limits, modalities, capabilities and prices per provider and model.

Data from the open models.dev catalog, bundled as ``models.json.gz`` (built by
``scripts/build_model_catalog.py``; the layout is described in :mod:`.convert`).
``vivace models --refresh`` downloads a fresh copy into the user's cache directory
(:func:`user_catalog_path`), which is then used instead of the bundled one.

Nothing here is loaded at ``import vivace``: the file is read on first need (a model's
first request, ``vivace models``) and kept for the process. Lookups::

    from vivace.models.catalog import model_info
    info = model_info("anthropic", "claude-3-haiku-20240307")
    info.max_output, info.accepts("image"), info.cost(usage)
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..base import Usage

__all__ = [
    "BUNDLED_PATH",
    "DEFAULT_URL",
    "Catalog",
    "ModelInfo",
    "load_catalog",
    "model_info",
    "refresh_catalog",
    "reset_catalog",
    "user_catalog_path",
]

BUNDLED_PATH = Path(__file__).with_name("models.json.gz")
DEFAULT_URL = "https://models.dev/api.json"

_MODALITY_NAMES = {"t": "text", "i": "image", "a": "audio", "v": "video", "p": "pdf"}
_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "us-gov.")


@dataclass(slots=True, frozen=True)
class ModelInfo:
    """What the catalog knows about one model. Prices are USD per million tokens;
    ``None`` means unknown (``structured_output=None``: the catalog does not say)."""

    provider: str
    id: str
    name: str
    context: int | None
    max_output: int | None
    input: tuple[str, ...]
    output: tuple[str, ...]
    tool_call: bool
    structured_output: bool | None
    reasoning: bool
    deprecated: bool = False
    dropped: bool = False
    """Kept from an older models.dev snapshot: the current list no longer has it."""
    price_input: float | None = None
    price_output: float | None = None
    price_cached: float | None = None

    def accepts(self, modality: str) -> bool:
        """Whether the model takes ``modality`` (``text``, ``image``, ``audio``, ``video``,
        ``pdf``) as input."""
        return modality in self.input

    def cost(self, usage: Usage) -> float | None:
        """USD for ``usage`` at this model's prices (``None`` when they are unknown).

        Cached input tokens are charged at the cached price (the input price when the
        catalog has none); ``output_tokens`` include reasoning tokens, as the providers
        bill them.
        """
        pin, pout = self.price_input, self.price_output
        if pin is None or pout is None:
            return None
        cached = min(usage.cached_tokens, usage.input_tokens)
        pc = self.price_cached if self.price_cached is not None else pin
        return (
            (usage.input_tokens - cached) * pin + cached * pc + usage.output_tokens * pout
        ) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "id": self.id,
            "name": self.name,
            "context": self.context,
            "max_output": self.max_output,
            "input": list(self.input),
            "output": list(self.output),
            "tool_call": self.tool_call,
            "structured_output": self.structured_output,
            "reasoning": self.reasoning,
            "deprecated": self.deprecated,
            "dropped": self.dropped,
            "price_input": self.price_input,
            "price_output": self.price_output,
            "price_cached": self.price_cached,
        }


def _info(pid: str, mid: str, row: list[Any]) -> ModelInfo:
    caps = row[5]
    prices = [*row[6:9], None, None, None]
    so = True if "s" in caps else False if "n" in caps else None
    return ModelInfo(
        pid,
        mid,
        row[0] or mid,
        row[1] or None,
        row[2] or None,
        tuple(_MODALITY_NAMES[c] for c in row[3] if c in _MODALITY_NAMES),
        tuple(_MODALITY_NAMES[c] for c in row[4] if c in _MODALITY_NAMES),
        "t" in caps,
        so,
        "r" in caps,
        "d" in caps,
        "o" in caps,
        prices[0],
        prices[1],
        prices[2],
    )


class Catalog:
    """One loaded catalog file (see :func:`load_catalog`)."""

    __slots__ = (
        "_lower",
        "data",
        "generated",
        "path",
        "providers",
        "skipped",
        "source",
        "source_date",
    )

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.data = data
        self.path = path
        self.source: str = data.get("source", "")
        self.source_date: str = data.get("source_date", "")
        self.generated: str = data.get("generated", "")
        self.providers: dict[str, dict[str, Any]] = data.get("providers") or {}
        self.skipped: dict[str, str] = data.get("skipped") or {}
        self._lower: dict[str, dict[str, str]] = {}

    @property
    def model_count(self) -> int:
        return sum(len(p["models"]) for p in self.providers.values())

    def provider_ids(self) -> list[str]:
        return list(self.providers)

    def provider(self, pid: str) -> dict[str, Any] | None:
        """The raw provider record (name, doc, env, connection, models)."""
        return self.providers.get(pid)

    def provider_entry(self, pid: str) -> dict[str, Any] | None:
        """A registry entry (protocol, base_url, key_env...) for a catalog-only provider."""
        p = self.providers.get(pid)
        if p is None or not p.get("protocol"):
            return None
        keys = ("protocol", "base_url", "key_env", "key_required", "auth", "headers")
        entry: dict[str, Any] = {k: p[k] for k in keys if k in p}
        entry["catalog"] = pid
        return entry

    def models(self, pid: str) -> list[ModelInfo]:
        p = self.providers.get(pid)
        if p is None:
            return []
        return [_info(pid, mid, row) for mid, row in p["models"].items()]

    def model(self, pid: str, name: str) -> ModelInfo | None:
        """The model ``name`` of provider ``pid``: exact id, else case-insensitive, else
        without a Bedrock region prefix (``us.``), else the newest dated version of an
        undated name (``claude-3-haiku`` -> ``claude-3-haiku-20240307``)."""
        p = self.providers.get(pid)
        if p is None:
            return None
        models: dict[str, list[Any]] = p["models"]
        row = models.get(name)
        if row is not None:
            return _info(pid, name, row)
        lower = self._lower.get(pid)
        if lower is None:
            lower = self._lower[pid] = {m.lower(): m for m in models}
        n = name.lower()
        mid = lower.get(n)
        if mid is None:
            for prefix in _REGION_PREFIXES:
                if n.startswith(prefix) and n[len(prefix) :] in lower:
                    mid = lower[n[len(prefix) :]]
                    break
        if mid is None:
            base = n[: -len("-latest")] if n.endswith("-latest") else n
            cut = len(base) + 1
            dated = [
                m
                for low, m in lower.items()
                if low.startswith(base + "-") and low[cut : cut + 4].isdigit()
            ]
            if dated:
                mid = max(dated)
        return None if mid is None else _info(pid, mid, models[mid])

    def search(self, text: str, providers: Iterable[str] | None = None) -> list[ModelInfo]:
        """Models whose id or name contains ``text`` (case-insensitive)."""
        t = text.lower()
        out = []
        for pid in providers if providers is not None else self.providers:
            p = self.providers.get(pid)
            if p is None:
                continue
            for mid, row in p["models"].items():
                if t in mid.lower() or t in str(row[0]).lower():
                    out.append(_info(pid, mid, row))
        return out


def user_catalog_path() -> Path:
    """Where ``vivace models --refresh`` keeps its copy: ``$VIVACE_CACHE_DIR/models.json.gz``,
    else the user cache directory (``$XDG_CACHE_HOME/vivace``, ``~/.cache/vivace``,
    ``~/Library/Caches/vivace`` on macOS, ``%LOCALAPPDATA%\\vivace`` on Windows)."""
    base = os.environ.get("VIVACE_CACHE_DIR")
    if base:
        return Path(base) / "models.json.gz"
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "vivace" / "models.json.gz"


def _read(path: Path) -> Catalog:
    with gzip.open(path, "rb") as f:
        return Catalog(json.loads(f.read()), path)


_LOADED: Catalog | None = None


def load_catalog() -> Catalog:
    """The catalog in use: the user copy (after ``vivace models --refresh``) if there is a
    readable one, else the bundled file. Read once per process."""
    global _LOADED
    cat = _LOADED
    if cat is None:
        user = user_catalog_path()
        if user.is_file():
            try:
                cat = _read(user)
            except (OSError, ValueError, EOFError):
                import logging

                logging.getLogger("vivace.models").warning(
                    "the model catalog at %s cannot be read; using the bundled one", user
                )
        if cat is None:
            cat = _read(BUNDLED_PATH)
        _LOADED = cat
    return cat


def reset_catalog() -> None:
    """Forget the loaded catalog (the next lookup reads the files again)."""
    global _LOADED
    _LOADED = None


def model_info(provider: str, model: str) -> ModelInfo | None:
    """What the catalog knows about ``provider``'s ``model`` (catalog provider id)."""
    return load_catalog().model(provider, model)


def refresh_catalog(
    url: str = DEFAULT_URL, *, known: Iterable[str] = (), timeout: float = 30.0
) -> Catalog:
    """Download models.dev's ``api.json`` from ``url``, convert it and save it as the user
    copy (:func:`user_catalog_path`); models the download lacks are kept from the bundled
    catalog. ``known``: provider ids the registry reaches by itself.

    Raises :class:`~vivace.errors.ModelConnectionError` when the download fails and
    :class:`~vivace.errors.ModelResponseError` when the answer is not a catalog; the
    catalog in use is then left as it was.
    """
    import datetime as dt
    import urllib.error
    import urllib.request

    from ...errors import ModelConnectionError, ModelResponseError
    from .convert import from_api_json, keep_dropped_models

    req = urllib.request.Request(
        url, headers={"user-agent": "vivace", "accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelConnectionError(
            f"cannot download the model catalog from {url}: {reason}", provider="models.dev"
        ) from exc
    try:
        api = json.loads(raw)
        if not isinstance(api, dict) or not any(
            isinstance(p, dict) and isinstance(p.get("models"), dict) for p in api.values()
        ):
            raise ValueError("no provider with models in it")
    except ValueError as exc:
        raise ModelResponseError(
            f"{url} did not answer with a models.dev catalog ({exc})",
            provider="models.dev",
            body=raw[:200].decode("utf-8", "replace"),
        ) from exc
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    data = from_api_json(api, source=url, source_date=now, generated=now, known=known)
    keep_dropped_models(data, _read(BUNDLED_PATH).data)
    path = user_catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 6))
    os.replace(tmp, path)
    reset_catalog()
    return Catalog(data, path)
