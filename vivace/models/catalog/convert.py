"""Turn the models.dev catalog (``https://models.dev/api.json``) into Vivace's compact layout.

Used by ``scripts/build_model_catalog.py`` (the bundled file) and by ``vivace models
--refresh`` (the user copy), so both produce the same data. Plain dicts in, plain dicts
out; no import of the registry (callers pass the provider ids the registry already knows).

The compact layout (``FORMAT``)::

    {"format": 1, "source": "...", "source_date": "...", "generated": "...",
     "skipped": {"provider-id": "why it cannot be reached"},
     "providers": {"groq": {"name": "Groq", "doc": "...", "env": [...],
                            "protocol": "openai-chat", "base_url": "...", "key_env": [...],
                            "models": {"llama-3.3-70b-versatile": ROW, ...}}}}

A model ``ROW`` is a list ``[name, context, max_output, input, output, caps, price_in,
price_out, price_cached]`` (trailing empty prices dropped): ``input``/``output`` are
modality letters (``t`` text, ``i`` image, ``a`` audio, ``v`` video, ``p`` pdf), ``caps``
letters are ``t`` tool calling, ``r`` reasoning, ``s`` structured output, ``n`` no structured
output (``s``/``n`` absent: unknown), ``d`` deprecated, ``o`` kept from an older snapshot
(the newer one dropped it); prices are USD per million tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["FORMAT", "MODALITIES", "from_api_json", "keep_dropped_models"]

FORMAT = 1

MODALITIES = {"text": "t", "image": "i", "audio": "a", "video": "v", "pdf": "p"}

# Providers of the catalog whose API Vivace has no adapter for (kept out of the catalog, so
# that every provider it lists can be reached as "provider/model").
SKIP: dict[str, str] = {
    "gitlab": "GitLab Duo's own API (no adapter)",
    "merge-gateway": "Merge Gateway's own AI SDK protocol (no adapter)",
    "qvac": "QVAC runs models through its own local SDK (no HTTP API)",
    "salad-cloud": "no base URL published in the catalog",
    "sap-ai-core": "SAP AI Core needs OAuth service keys (no adapter)",
    "watsonx": "IBM watsonx.ai needs IAM tokens and its own API (no adapter)",
}

# Providers the catalog describes only by their AI SDK package: how to reach them.
CONNECTIONS: dict[str, dict[str, Any]] = {
    "aihubmix": {"protocol": "openai-chat", "base_url": "https://aihubmix.com/v1"},
    "azure-cognitive-services": {
        "protocol": "openai-chat",
        "base_url": "https://{AZURE_COGNITIVE_SERVICES_RESOURCE_NAME}.cognitiveservices.azure.com/openai/v1",
        "auth": "api-key",
    },
    "cloudflare-ai-gateway": {
        "protocol": "openai-chat",
        "base_url": "https://gateway.ai.cloudflare.com/v1/{CLOUDFLARE_ACCOUNT_ID}/{CLOUDFLARE_GATEWAY_ID}/compat",
        "key_env": ["CLOUDFLARE_API_TOKEN"],
        "auth": "bearer:cf-aig-authorization",
    },
    "v0": {"protocol": "openai-chat", "base_url": "https://api.v0.dev/v1"},
    "perplexity-agent": {"protocol": "openai-responses"},
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LOCAL = ("://localhost", "://127.0.0.1", "://0.0.0.0", "://[::1]")


def _letters(values: Iterable[Any]) -> str:
    return "".join(MODALITIES[v] for v in values if v in MODALITIES)


def _row(m: Mapping[str, Any]) -> list[Any]:
    limit = m.get("limit") or {}
    mods = m.get("modalities") or {}
    caps = ""
    if m.get("tool_call"):
        caps += "t"
    if m.get("reasoning"):
        caps += "r"
    so = m.get("structured_output")
    if so is True:
        caps += "s"
    elif so is False:
        caps += "n"
    if m.get("status") == "deprecated":
        caps += "d"
    cost = m.get("cost") or {}
    row: list[Any] = [
        m.get("name") or m.get("id") or "",
        int(limit.get("context") or 0),
        int(limit.get("output") or 0),
        _letters(mods.get("input") or ("text",)),
        _letters(mods.get("output") or ("text",)),
        caps,
        _price(cost.get("input")),
        _price(cost.get("output")),
        _price(cost.get("cache_read")),
    ]
    while len(row) > 6 and row[-1] is None:
        row.pop()
    return row


def _price(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return int(v) if float(v).is_integer() else round(float(v), 6)


def _connection(pid: str, p: Mapping[str, Any]) -> dict[str, Any] | None:
    """protocol/base_url/key_env/... for a catalog provider, or None when unknown."""
    env = [str(e) for e in p.get("env") or ()]
    api = p.get("api")
    npm = str(p.get("npm") or "")
    conn = dict(CONNECTIONS.get(pid, {}))
    if "base_url" not in conn:
        if not api:
            return None
        url = _VAR.sub(r"{\1}", str(api)).rstrip("/")
        if url.endswith("/chat/completions"):
            url = url[: -len("/chat/completions")]
        if npm.startswith("@ai-sdk/anthropic"):
            conn.setdefault("protocol", "anthropic")
            url = url[:-3] if url.endswith("/v1") else url  # the adapter adds v1/messages
            conn.setdefault("auth", "x-api-key")
            conn.setdefault("headers", {"anthropic-version": "2023-06-01"})
        conn["base_url"] = url
    conn.setdefault("protocol", "openai-chat")
    base = conn["base_url"]
    if "key_env" not in conn:
        conn["key_env"] = [
            e for e in env if "{" + e + "}" not in base and "{" + e + ":" not in base
        ]
    if any(h in base for h in _LOCAL):
        conn["key_required"] = False
    return conn


def from_api_json(
    api: Mapping[str, Any],
    *,
    source: str,
    source_date: str,
    generated: str,
    known: Iterable[str] = (),
) -> dict[str, Any]:
    """The compact catalog for a models.dev ``api.json`` document.

    ``known`` are provider ids (and aliases) the registry reaches by itself; other
    providers need a base URL in the catalog (or an entry in :data:`CONNECTIONS`), else
    they are listed under ``skipped`` with the reason.
    """
    known_ids = set(known)
    providers: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for pid in sorted(api):
        p = api[pid]
        if not isinstance(p, Mapping) or not isinstance(p.get("models"), Mapping):
            continue
        if pid in SKIP:
            skipped[pid] = SKIP[pid]
            continue
        conn = _connection(pid, p)
        if conn is None and pid not in known_ids:
            skipped[pid] = f"no base URL in the catalog (AI SDK package {p.get('npm')})"
            continue
        entry: dict[str, Any] = {
            "name": p.get("name") or pid,
            "doc": p.get("doc") or "",
            "env": list(p.get("env") or ()),
        }
        if conn is not None:
            entry.update(conn)
        models = p["models"]
        entry["models"] = {
            str(mid): _row(models[mid])
            for mid in sorted(models)
            if isinstance(models[mid], Mapping)
        }
        providers[pid] = entry
    return {
        "format": FORMAT,
        "source": source,
        "source_date": source_date,
        "generated": generated,
        "skipped": skipped,
        "providers": providers,
    }


def keep_dropped_models(new: dict[str, Any], old: Mapping[str, Any]) -> int:
    """Add to ``new`` (in place) the models of ``old`` that ``new`` no longer lists for a
    provider it still has, flagged ``o`` (an older snapshot's data). Returns how many.

    models.dev drops retired models; users still run them (``claude-3-haiku-20240307``),
    and their limits and prices are still right.
    """
    added = 0
    for pid, old_p in (old.get("providers") or {}).items():
        new_p = new["providers"].get(pid)
        if new_p is None:
            continue
        models = new_p["models"]
        for mid, row in (old_p.get("models") or {}).items():
            if mid in models:
                continue
            row = list(row)
            if "o" not in row[5]:
                row[5] += "o"
            models[mid] = row
            added += 1
        new_p["models"] = dict(sorted(models.items()))
    return added
