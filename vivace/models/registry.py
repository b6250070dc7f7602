"""The provider registry, as data: which wire protocol, base URL and key each provider uses.

Edit :data:`PROVIDERS` by hand to add a provider; every entry is a plain dict:

``protocol``
    ``"openai-chat"``, ``"openai-responses"``, ``"anthropic"``, ``"gemini"``, ``"bedrock"``,
    ``"ollama"``, ``"llamacpp"`` (in-process) or ``"test"``.
``base_url``
    A template: ``{VAR}`` is read from the environment, ``{VAR:default}`` falls back to
    ``default`` (``"{OLLAMA_HOST:http://localhost:11434}/v1"``). A missing ``{VAR}`` without
    default raises :class:`~vivace.errors.ModelConfigError` naming it. A URL without scheme
    gets ``http://``.
``key_env``
    Environment variable(s) holding the API key, first set wins (``[]`` for none).
``key_required``
    ``False`` for local servers (default ``True`` when ``key_env`` is given).
``auth``
    How the key is sent: ``"bearer"`` (default, ``Authorization: Bearer``),
    ``"bearer:<header>"`` (``<header>: Bearer <key>``), ``"api-key"``
    (Azure), ``"x-api-key"`` (Anthropic), ``"x-goog-api-key"`` (Gemini), ``"sigv4"``
    (Bedrock, signed by the adapter), ``"google-adc"`` (Vertex, token by the adapter),
    ``"none"``.
``headers``
    Extra headers; values are templates like ``base_url`` (empty results are dropped).
``options``
    Adapter quirks, e.g. ``native_output`` (JSON-schema answers supported),
    ``stream_usage`` (send ``stream_options.include_usage``), ``max_tokens_field``,
    ``strict_tools`` (send ``strict`` on tool schemas).
``embeddings``
    Whether the provider serves an embeddings endpoint on the same protocol family.
``chat``
    Whether it serves chat models (default ``True``; ``False`` for embeddings-only APIs such
    as Voyage and Jina: a chat model string on them raises before any request).
``catalog``
    The provider's id in the model catalog (:mod:`vivace.models.catalog`) when it differs
    from its own id and aliases (``openai-responses`` -> ``openai``).
``aliases``
    Other ids that name the same provider.

Providers of the model catalog that are not listed here (most are OpenAI-compatible with a
base URL and a key variable) are added from the catalog on first lookup, so every catalog
provider is reachable as ``"provider/model"``; the entries here win.

At runtime: :func:`register_provider` adds or replaces one; :func:`get_provider` looks one
up (aliases included); :func:`provider_ids` lists them. The router turns an entry into a
model adapter (:mod:`vivace.models.router`). Nothing here imports httpx.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelConfigError, ModelNotFoundError

__all__ = [
    "PROTOCOLS",
    "PROVIDERS",
    "ProviderInfo",
    "expand_template",
    "get_provider",
    "provider_ids",
    "register_provider",
]

PROTOCOLS = (
    "openai-chat",
    "openai-responses",
    "anthropic",
    "gemini",
    "bedrock",
    "ollama",
    "llamacpp",
    "test",
)

_OPENAI_OPTS = {
    "native_output": True,
    "strict_tools": True,
    "max_tokens_field": "max_completion_tokens",
}
_NATIVE = {"native_output": True}

# fmt: off
PROVIDERS: dict[str, dict[str, Any]] = {
    # -- first-party APIs -------------------------------------------------------------------
    "openai": {"protocol": "openai-chat", "base_url": "{OPENAI_BASE_URL:https://api.openai.com/v1}", "key_env": ["OPENAI_API_KEY"], "options": _OPENAI_OPTS, "embeddings": True},
    "openai-responses": {"protocol": "openai-responses", "base_url": "{OPENAI_BASE_URL:https://api.openai.com/v1}", "key_env": ["OPENAI_API_KEY"], "options": _OPENAI_OPTS, "embeddings": True, "catalog": "openai"},
    "azure": {"protocol": "openai-chat", "base_url": "{AZURE_OPENAI_ENDPOINT}/openai/v1", "key_env": ["AZURE_OPENAI_API_KEY"], "auth": "api-key", "options": _OPENAI_OPTS, "embeddings": True, "aliases": ["azure-openai"]},
    "azure-responses": {"protocol": "openai-responses", "base_url": "{AZURE_OPENAI_ENDPOINT}/openai/v1", "key_env": ["AZURE_OPENAI_API_KEY"], "auth": "api-key", "options": _OPENAI_OPTS, "catalog": "azure"},
    "azure-ai": {"protocol": "openai-chat", "base_url": "{AZURE_AI_ENDPOINT}/openai/v1", "key_env": ["AZURE_AI_API_KEY", "AZURE_API_KEY"], "auth": "api-key", "options": _NATIVE, "aliases": ["azure-ai-foundry"]},
    "anthropic": {"protocol": "anthropic", "base_url": "{ANTHROPIC_BASE_URL:https://api.anthropic.com}", "key_env": ["ANTHROPIC_API_KEY"], "auth": "x-api-key", "headers": {"anthropic-version": "2023-06-01"}, "aliases": ["claude"]},
    "google": {"protocol": "gemini", "base_url": "https://generativelanguage.googleapis.com", "key_env": ["GOOGLE_API_KEY", "GEMINI_API_KEY"], "auth": "x-goog-api-key", "embeddings": True, "aliases": ["gemini", "google-gemini"]},
    "google-openai": {"protocol": "openai-chat", "base_url": "https://generativelanguage.googleapis.com/v1beta/openai", "key_env": ["GOOGLE_API_KEY", "GEMINI_API_KEY"], "options": _NATIVE, "embeddings": True, "catalog": "google"},
    "vertex": {"protocol": "gemini", "base_url": "https://{GOOGLE_CLOUD_LOCATION:us-central1}-aiplatform.googleapis.com/v1/projects/{GOOGLE_CLOUD_PROJECT}/locations/{GOOGLE_CLOUD_LOCATION:us-central1}/publishers/google", "key_env": [], "key_required": False, "auth": "google-adc", "embeddings": True, "aliases": ["vertexai", "google-vertex"]},
    "vertex-anthropic": {"protocol": "anthropic", "base_url": "https://{GOOGLE_CLOUD_LOCATION:us-east5}-aiplatform.googleapis.com/v1/projects/{GOOGLE_CLOUD_PROJECT}/locations/{GOOGLE_CLOUD_LOCATION:us-east5}/publishers/anthropic", "key_env": [], "key_required": False, "auth": "google-adc", "aliases": ["google-vertex-anthropic"]},
    "bedrock": {"protocol": "bedrock", "base_url": "https://bedrock-runtime.{AWS_REGION:us-east-1}.amazonaws.com", "key_env": ["AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK"], "key_required": False, "auth": "sigv4", "aliases": ["aws", "aws-bedrock", "amazon-bedrock"]},
    "mistral": {"protocol": "openai-chat", "base_url": "https://api.mistral.ai/v1", "key_env": ["MISTRAL_API_KEY"], "options": _NATIVE, "embeddings": True, "aliases": ["mistralai"]},
    "groq": {"protocol": "openai-chat", "base_url": "https://api.groq.com/openai/v1", "key_env": ["GROQ_API_KEY"], "options": _NATIVE},
    "together": {"protocol": "openai-chat", "base_url": "https://api.together.xyz/v1", "key_env": ["TOGETHER_API_KEY"], "options": _NATIVE, "embeddings": True, "aliases": ["togetherai", "together-ai"]},
    "fireworks": {"protocol": "openai-chat", "base_url": "https://api.fireworks.ai/inference/v1", "key_env": ["FIREWORKS_API_KEY"], "options": _NATIVE, "embeddings": True, "aliases": ["fireworks-ai"]},
    "deepseek": {"protocol": "openai-chat", "base_url": "https://api.deepseek.com", "key_env": ["DEEPSEEK_API_KEY"]},
    "xai": {"protocol": "openai-chat", "base_url": "https://api.x.ai/v1", "key_env": ["XAI_API_KEY"], "options": _NATIVE, "aliases": ["grok"]},
    "cohere": {"protocol": "openai-chat", "base_url": "https://api.cohere.ai/compatibility/v1", "key_env": ["CO_API_KEY", "COHERE_API_KEY"], "options": {"native_output": True, "stream_usage": False}, "embeddings": True},
    "cerebras": {"protocol": "openai-chat", "base_url": "https://api.cerebras.ai/v1", "key_env": ["CEREBRAS_API_KEY"], "options": _NATIVE},
    "openrouter": {"protocol": "openai-chat", "base_url": "https://openrouter.ai/api/v1", "key_env": ["OPENROUTER_API_KEY"], "options": _NATIVE, "headers": {"HTTP-Referer": "{OPENROUTER_APP_URL:}", "X-Title": "{OPENROUTER_APP_NAME:}"}},
    "perplexity": {"protocol": "openai-chat", "base_url": "https://api.perplexity.ai", "key_env": ["PERPLEXITY_API_KEY"], "options": _NATIVE, "aliases": ["pplx"]},
    "deepinfra": {"protocol": "openai-chat", "base_url": "https://api.deepinfra.com/v1/openai", "key_env": ["DEEPINFRA_API_KEY"], "options": _NATIVE, "embeddings": True},
    "nebius": {"protocol": "openai-chat", "base_url": "https://api.tokenfactory.nebius.com/v1", "key_env": ["NEBIUS_API_KEY"], "options": _NATIVE, "embeddings": True},
    "sambanova": {"protocol": "openai-chat", "base_url": "https://api.sambanova.ai/v1", "key_env": ["SAMBANOVA_API_KEY"]},
    "nvidia": {"protocol": "openai-chat", "base_url": "https://integrate.api.nvidia.com/v1", "key_env": ["NVIDIA_API_KEY"], "embeddings": True, "aliases": ["nvidia-nim", "nim"]},
    "huggingface": {"protocol": "openai-chat", "base_url": "https://router.huggingface.co/v1", "key_env": ["HF_TOKEN", "HUGGINGFACE_API_KEY"], "aliases": ["hf"]},
    "dashscope": {"protocol": "openai-chat", "base_url": "{DASHSCOPE_BASE_URL:https://dashscope-intl.aliyuncs.com/compatible-mode/v1}", "key_env": ["DASHSCOPE_API_KEY"], "embeddings": True, "aliases": ["qwen", "alibaba"]},
    "siliconflow": {"protocol": "openai-chat", "base_url": "{SILICONFLOW_BASE_URL:https://api.siliconflow.com/v1}", "key_env": ["SILICONFLOW_API_KEY"], "embeddings": True},
    "moonshot": {"protocol": "openai-chat", "base_url": "https://api.moonshot.ai/v1", "key_env": ["MOONSHOT_API_KEY"], "aliases": ["kimi", "moonshotai"]},
    "zai": {"protocol": "openai-chat", "base_url": "https://api.z.ai/api/paas/v4", "key_env": ["ZAI_API_KEY"], "aliases": ["z-ai"]},
    "zhipu": {"protocol": "openai-chat", "base_url": "https://open.bigmodel.cn/api/paas/v4", "key_env": ["ZHIPUAI_API_KEY"], "aliases": ["zhipuai", "glm"]},
    "minimax": {"protocol": "openai-chat", "base_url": "https://api.minimax.io/v1", "key_env": ["MINIMAX_API_KEY"]},
    "ai21": {"protocol": "openai-chat", "base_url": "https://api.ai21.com/studio/v1", "key_env": ["AI21_API_KEY"]},
    "upstage": {"protocol": "openai-chat", "base_url": "https://api.upstage.ai/v1", "key_env": ["UPSTAGE_API_KEY"], "embeddings": True},
    "novita": {"protocol": "openai-chat", "base_url": "https://api.novita.ai/v3/openai", "key_env": ["NOVITA_API_KEY"]},
    "hyperbolic": {"protocol": "openai-chat", "base_url": "https://api.hyperbolic.xyz/v1", "key_env": ["HYPERBOLIC_API_KEY"]},
    "lambda": {"protocol": "openai-chat", "base_url": "https://api.lambda.ai/v1", "key_env": ["LAMBDA_API_KEY"]},
    "featherless": {"protocol": "openai-chat", "base_url": "https://api.featherless.ai/v1", "key_env": ["FEATHERLESS_API_KEY"]},
    "baseten": {"protocol": "openai-chat", "base_url": "https://inference.baseten.co/v1", "key_env": ["BASETEN_API_KEY"]},
    "nscale": {"protocol": "openai-chat", "base_url": "https://inference.api.nscale.com/v1", "key_env": ["NSCALE_API_KEY"]},
    "scaleway": {"protocol": "openai-chat", "base_url": "https://api.scaleway.ai/v1", "key_env": ["SCW_SECRET_KEY", "SCALEWAY_API_KEY"], "embeddings": True},
    "ovhcloud": {"protocol": "openai-chat", "base_url": "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1", "key_env": ["OVHCLOUD_API_KEY"], "aliases": ["ovh"]},
    "cloudflare": {"protocol": "openai-chat", "base_url": "https://api.cloudflare.com/client/v4/accounts/{CLOUDFLARE_ACCOUNT_ID}/ai/v1", "key_env": ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY"], "embeddings": True, "aliases": ["workers-ai"]},
    "github": {"protocol": "openai-chat", "base_url": "https://models.github.ai/inference", "key_env": ["GITHUB_TOKEN"], "aliases": ["github-models"]},
    "llama-api": {"protocol": "openai-chat", "base_url": "https://api.llama.com/compat/v1", "key_env": ["LLAMA_API_KEY"], "aliases": ["llama", "meta-llama"]},
    "inception": {"protocol": "openai-chat", "base_url": "https://api.inceptionlabs.ai/v1", "key_env": ["INCEPTION_API_KEY"]},
    "venice": {"protocol": "openai-chat", "base_url": "https://api.venice.ai/api/v1", "key_env": ["VENICE_API_KEY"]},
    "chutes": {"protocol": "openai-chat", "base_url": "https://llm.chutes.ai/v1", "key_env": ["CHUTES_API_KEY"]},
    "friendli": {"protocol": "openai-chat", "base_url": "https://api.friendli.ai/serverless/v1", "key_env": ["FRIENDLI_TOKEN"]},
    "voyage": {"protocol": "openai-chat", "base_url": "https://api.voyageai.com/v1", "key_env": ["VOYAGE_API_KEY"], "embeddings": True, "chat": False, "aliases": ["voyageai"]},
    "jina": {"protocol": "openai-chat", "base_url": "https://api.jina.ai/v1", "key_env": ["JINA_API_KEY"], "embeddings": True, "chat": False},
    # -- gateways ---------------------------------------------------------------------------
    "litellm": {"protocol": "openai-chat", "base_url": "{LITELLM_PROXY_URL:http://localhost:4000}/v1", "key_env": ["LITELLM_API_KEY"], "key_required": False, "options": _NATIVE, "embeddings": True, "aliases": ["litellm-proxy"]},
    "portkey": {"protocol": "openai-chat", "base_url": "{PORTKEY_BASE_URL:https://api.portkey.ai/v1}", "key_env": ["PORTKEY_API_KEY"], "auth": "x-portkey-api-key", "headers": {"x-portkey-provider": "{PORTKEY_PROVIDER:}", "x-portkey-virtual-key": "{PORTKEY_VIRTUAL_KEY:}", "x-portkey-config": "{PORTKEY_CONFIG:}"}, "options": _NATIVE, "embeddings": True},
    "vercel": {"protocol": "openai-chat", "base_url": "https://ai-gateway.vercel.sh/v1", "key_env": ["AI_GATEWAY_API_KEY"], "options": _NATIVE, "aliases": ["vercel-ai-gateway"]},
    "requesty": {"protocol": "openai-chat", "base_url": "https://router.requesty.ai/v1", "key_env": ["REQUESTY_API_KEY"], "options": _NATIVE},
    "aimlapi": {"protocol": "openai-chat", "base_url": "https://api.aimlapi.com/v1", "key_env": ["AIMLAPI_API_KEY", "AIML_API_KEY"]},
    "cometapi": {"protocol": "openai-chat", "base_url": "https://api.cometapi.com/v1", "key_env": ["COMETAPI_KEY"]},
    # -- local servers (no key) -------------------------------------------------------------
    "ollama": {"protocol": "ollama", "base_url": "{OLLAMA_HOST:http://localhost:11434}", "key_env": ["OLLAMA_API_KEY"], "key_required": False, "options": _NATIVE, "embeddings": True},
    "ollama-openai": {"protocol": "openai-chat", "base_url": "{OLLAMA_HOST:http://localhost:11434}/v1", "key_env": ["OLLAMA_API_KEY"], "key_required": False, "options": _NATIVE, "embeddings": True},
    "ollama-cloud": {"protocol": "openai-chat", "base_url": "https://ollama.com/v1", "key_env": ["OLLAMA_API_KEY"]},
    "lmstudio": {"protocol": "openai-chat", "base_url": "{LMSTUDIO_BASE_URL:http://localhost:1234/v1}", "key_env": [], "key_required": False, "options": _NATIVE, "embeddings": True, "aliases": ["lm-studio"]},
    "vllm": {"protocol": "openai-chat", "base_url": "{VLLM_BASE_URL:http://localhost:8000/v1}", "key_env": ["VLLM_API_KEY"], "key_required": False, "options": _NATIVE, "embeddings": True},
    "sglang": {"protocol": "openai-chat", "base_url": "{SGLANG_BASE_URL:http://localhost:30000/v1}", "key_env": [], "key_required": False, "options": _NATIVE},
    "llamacpp-server": {"protocol": "openai-chat", "base_url": "{LLAMACPP_BASE_URL:http://localhost:8080/v1}", "key_env": ["LLAMACPP_API_KEY"], "key_required": False, "options": _NATIVE, "embeddings": True, "aliases": ["llama-server", "llama-cpp-server"]},
    "llamacpp": {"protocol": "llamacpp", "base_url": "", "key_env": [], "key_required": False, "aliases": ["llama-cpp"]},
    "localai": {"protocol": "openai-chat", "base_url": "{LOCALAI_BASE_URL:http://localhost:8080/v1}", "key_env": [], "key_required": False, "embeddings": True},
    "jan": {"protocol": "openai-chat", "base_url": "{JAN_BASE_URL:http://localhost:1337/v1}", "key_env": [], "key_required": False},
    "llamafile": {"protocol": "openai-chat", "base_url": "{LLAMAFILE_BASE_URL:http://localhost:8080/v1}", "key_env": [], "key_required": False},
    "tgi": {"protocol": "openai-chat", "base_url": "{TGI_BASE_URL:http://localhost:8080/v1}", "key_env": [], "key_required": False},
    "docker": {"protocol": "openai-chat", "base_url": "{DOCKER_MODEL_RUNNER_URL:http://localhost:12434/engines/v1}", "key_env": [], "key_required": False, "aliases": ["docker-model-runner"]},
    # -- offline test models (vivace.testing) ----------------------------------------------
    "test": {"protocol": "test", "base_url": "", "key_env": [], "key_required": False},
}
# fmt: on


@dataclass(slots=True, frozen=True)
class ProviderInfo:
    """A registry entry, parsed. Build one with :func:`get_provider`."""

    id: str
    protocol: str
    base_url: str
    key_env: tuple[str, ...] = ()
    key_required: bool = True
    auth: str = "bearer"
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    embeddings: bool = False
    aliases: tuple[str, ...] = ()
    chat: bool = True
    catalog: str | None = None

    @property
    def catalog_ids(self) -> tuple[str, ...]:
        """Ids to look this provider's models up under in the model catalog."""
        return (self.catalog,) if self.catalog else (self.id, *self.aliases)

    @classmethod
    def from_entry(cls, pid: str, entry: Mapping[str, Any]) -> ProviderInfo:
        key_env = entry.get("key_env", ())
        if isinstance(key_env, str):
            key_env = (key_env,)
        return cls(
            id=pid,
            protocol=entry["protocol"],
            base_url=entry.get("base_url", ""),
            key_env=tuple(key_env),
            key_required=entry.get("key_required", bool(key_env)),
            auth=entry.get("auth", "bearer"),
            headers=dict(entry.get("headers") or {}),
            options=dict(entry.get("options") or {}),
            embeddings=bool(entry.get("embeddings", False)),
            aliases=tuple(entry.get("aliases", ())),
            chat=bool(entry.get("chat", True)),
            catalog=entry.get("catalog"),
        )

    def env_key(self, env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
        """(key, env var it came from), or (None, None) when no key variable is set."""
        env = os.environ if env is None else env
        for name in self.key_env:
            value = env.get(name)
            if value:
                return value, name
        return None, None

    def resolve_key(self, api_key: str | None = None) -> str | None:
        """The API key: ``api_key``, else the first set ``key_env`` variable.

        Raises :class:`ModelConfigError` naming the variable when a required key is missing.
        """
        if api_key:
            return api_key
        key, _ = self.env_key()
        if key is None and self.key_required:
            names = " or ".join(self.key_env) or "an API key"
            raise ModelConfigError(
                f"provider {self.id!r} needs an API key: set {names} (or pass api_key=)",
                provider=self.id,
                env_var=self.key_env[0] if self.key_env else None,
            )
        return key

    def resolve_base_url(self, base_url: str | None = None) -> str:
        """The base URL: ``base_url`` or the expanded template."""
        url = expand_template(base_url or self.base_url, self.id, "base URL")
        if url and "://" not in url:
            url = "http://" + url
        return url.rstrip("/")

    def resolve_headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Extra headers (templates expanded, empty values dropped) plus ``extra``."""
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            v = expand_template(value, self.id, f"header {name}")
            if v:
                out[name] = v
        if extra:
            out.update(extra)
        return out

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """The headers that carry ``key`` for this provider's ``auth`` style."""
        if not key:
            return {}
        auth = self.auth
        if auth == "bearer":
            return {"authorization": f"Bearer {key}"}
        if auth in ("none", "sigv4", "google-adc"):
            return {}  # signed or obtained by the adapter
        if auth.startswith("bearer:"):  # "bearer:<header>": a bearer token in another header
            return {auth[7:]: f"Bearer {key}"}
        return {auth: key}  # the header name itself: api-key, x-api-key, x-goog-api-key...


_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def expand_template(template: str, provider: str = "", what: str = "value") -> str:
    """Expand ``{VAR}`` / ``{VAR:default}`` from the environment."""
    if "{" not in template:
        return template

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value:
            return value.rstrip("/") if m.end() < len(template) else value
        if default is not None:
            return default
        raise ModelConfigError(
            f"provider {provider!r} needs {name} to be set (it is part of its {what})",
            provider=provider,
            env_var=name,
        )

    return _TEMPLATE.sub(sub, template)


# -- lookups ----------------------------------------------------------------------------------

_INFO: dict[str, ProviderInfo] = {}
_ALIASES: dict[str, str] = {}
_version = 0


def _rebuild_aliases() -> None:
    _ALIASES.clear()
    for pid, entry in PROVIDERS.items():
        for alias in entry.get("aliases", ()):
            _ALIASES.setdefault(alias, pid)


_rebuild_aliases()


def registry_version() -> int:
    """Bumped by every :func:`register_provider` (lets caches notice changes)."""
    return _version


def provider_ids(include_aliases: bool = False, catalog: bool = True) -> list[str]:
    """All provider ids (and aliases); with ``catalog`` (the default) also the model
    catalog's providers that are not in :data:`PROVIDERS` (this reads the catalog)."""
    ids = list(PROVIDERS)
    if include_aliases:
        ids += [a for a in _ALIASES if a not in PROVIDERS]
    if catalog:
        from .catalog import load_catalog

        cat = load_catalog()
        ids += [
            p
            for p in cat.provider_ids()
            if p not in PROVIDERS and p not in _ALIASES and cat.provider_entry(p) is not None
        ]
    return ids


def _catalog_entry(provider_id: str) -> dict[str, Any] | None:
    from .catalog import load_catalog

    return load_catalog().provider_entry(provider_id)


def get_provider(provider_id: str) -> ProviderInfo:
    """The :class:`ProviderInfo` for an id or alias (:class:`ModelNotFoundError` if unknown)."""
    info = _INFO.get(provider_id)
    if info is not None:
        return info
    pid = provider_id if provider_id in PROVIDERS else _ALIASES.get(provider_id.lower())
    if pid is None and provider_id.lower() in PROVIDERS:
        pid = provider_id.lower()
    if pid is None:
        entry = _catalog_entry(provider_id) or _catalog_entry(provider_id.lower())
        if entry is not None:
            info = ProviderInfo.from_entry(entry["catalog"], entry)
            _INFO[provider_id] = info
            return info
        import difflib

        close = difflib.get_close_matches(
            provider_id.lower(), provider_ids(include_aliases=True), n=3, cutoff=0.5
        )
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model provider {provider_id!r}{hint} (see `vivace models` for the list, "
            "or register one with vivace.models.register_provider)",
            provider=provider_id,
            suggestions=close,
        )
    info = ProviderInfo.from_entry(pid, PROVIDERS[pid])
    _INFO[provider_id] = info
    return info


def register_provider(
    id: str,
    *,
    protocol: str = "openai-chat",
    base_url: str,
    key_env: str | Sequence[str] = (),
    key_required: bool | None = None,
    auth: str = "bearer",
    headers: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    embeddings: bool = True,
    aliases: Sequence[str] = (),
    chat: bool = True,
    catalog: str | None = None,
) -> ProviderInfo:
    """Add (or replace) a provider at runtime, e.g. a company gateway:

    .. code-block:: python

        register_provider("corp", base_url="https://llm.corp.example/v1", key_env="CORP_LLM_KEY")
        Agent(model="corp/llama-3.3-70b")

    ``chat=False`` marks an embeddings-only API; ``catalog`` names the model catalog's
    provider whose limits and prices apply (default: none unless ``id`` is one).
    Replacing a provider drops cached models that used it.
    """
    global _version
    if protocol not in PROTOCOLS:
        from ..errors import UserError

        raise UserError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if "/" in id or not id:
        from ..errors import UserError

        raise UserError(f"provider id must be non-empty and contain no '/': {id!r}")
    key_env_t = (key_env,) if isinstance(key_env, str) else tuple(key_env)
    PROVIDERS[id] = {
        "protocol": protocol,
        "base_url": base_url,
        "key_env": list(key_env_t),
        "key_required": bool(key_env_t) if key_required is None else key_required,
        "auth": auth,
        "headers": dict(headers or {}),
        "options": dict(options or {}),
        "embeddings": embeddings,
        "aliases": list(aliases),
        "chat": chat,
    }
    if catalog is not None:
        PROVIDERS[id]["catalog"] = catalog
    _INFO.clear()
    _rebuild_aliases()
    _version += 1  # the router sees the new version and drops its cached models
    return get_provider(id)
