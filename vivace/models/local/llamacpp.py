"""In-process llama.cpp models: ``Agent(model="llamacpp/<path-to.gguf>")``.

Needs the optional extra ``vivace[llamacpp]`` (``llama-cpp-python``). Nothing leaves the
process: the GGUF file is loaded once per process (per path and context size) in a worker
thread, and every generation runs in a worker thread too, so the event loop never blocks;
tokens are handed to the loop as they come (:class:`~vivace.models.TextDelta`). One model
instance generates one answer at a time (llama.cpp contexts are not thread-safe);
concurrent requests queue. Cancelling the consumer stops generation at the next token.

Prompting: when the GGUF carries a chat template (``tokenizer.chat_template``) the
conversation is rendered with it (Jinja2, as llama.cpp's own server does); otherwise - base
models such as Gemma 3 270M (pretrained) - as a plain transcript (``User:`` /
``Assistant:`` turns, stopping at the next ``User:``). Settings: ``max_tokens`` (default
512, option ``default_max_tokens``), ``temperature``, ``top_p``, ``top_k``, ``stop``,
``seed``, ``presence_penalty``, ``frequency_penalty``, ``repeat_penalty``. Usage counts come
from the model's tokenizer (prompt and generated text); ``requests`` is 1.

Structured output is native: the JSON schema becomes a llama.cpp grammar, so the answer is
valid JSON of that shape - when the request has no tools (a grammar would forbid tool calls;
with tools the schema is described in the prompt instead).

Tools are prompted, not native: the tool definitions and a reply convention
(``{"tool": "<name>", "arguments": {...}}``, or a JSON list of those) go into the system
text; an answer that is exactly such JSON (optionally in a code fence) naming a known tool
becomes :class:`~vivace.messages.ToolCallPart` s, anything else is text. Tool results go
back as user text. Small and base models follow the convention unreliably - expect
answers in prose; instruction-tuned models with tool training do much better.

Limits: text only (images, audio, video and files raise
:class:`~vivace.errors.ModelConfigError`); no reasoning channel; no embeddings here.

Options (``get_model("llamacpp/...", n_ctx=8192, ...)``): ``n_ctx`` (default 4096),
``n_threads``, ``n_gpu_layers`` (default 0), ``n_batch``, ``chat_template`` (a Jinja
template overriding the file's), ``plain_prompt`` (force the transcript format),
``default_max_tokens``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ...errors import ModelConfigError, ModelError, UserError
from ...messages import Message, Part, ReasoningPart, TextPart, ToolCallPart, ToolResultPart
from ..base import (
    FinishReason,
    Model,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)
from ..registry import ProviderInfo

__all__ = ["LlamaCppModel", "parse_tool_calls"]

_LOADED: dict[tuple[str, int, int], Any] = {}
_LOAD_LOCK = threading.Lock()
_GEN_LOCKS: dict[int, threading.Lock] = {}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _load(path: str, n_ctx: int, n_gpu_layers: int, extra: Mapping[str, Any]) -> Any:
    key = (path, n_ctx, n_gpu_layers)
    with _LOAD_LOCK:
        llm = _LOADED.get(key)
        if llm is None:
            from llama_cpp import Llama

            llm = Llama(
                model_path=path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False, **extra
            )
            _LOADED[key] = llm
            _GEN_LOCKS[id(llm)] = threading.Lock()
        return llm


def parse_tool_calls(
    text: str, tools: list[ToolDefinition]
) -> list[tuple[str, dict[str, Any]]] | None:
    """``[(name, arguments)]`` when ``text`` is a tool call in the prompted convention."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    if not s or s[0] not in "{[":
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    items = obj if isinstance(obj, list) else [obj]
    names = {t.name for t in tools}
    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        name = item.get("tool") or item.get("name")
        args = item.get("arguments", item.get("parameters", {}))
        if name not in names or not isinstance(args, dict):
            return None
        out.append((name, args))
    return out or None


class LlamaCppModel(Model):
    """A GGUF model run in-process by ``llama-cpp-python`` (see module docs)."""

    provider = "llamacpp"
    supports_native_output = True
    supports_tools = True

    def __init__(
        self,
        model_path: str,
        *,
        provider: str = "llamacpp",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.model_path = os.path.abspath(os.path.expanduser(model_path))
        self.model_name = model_path
        self.provider = provider
        self.options = dict(options or {})

    @classmethod
    def from_provider(
        cls,
        info: ProviderInfo,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> LlamaCppModel:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ModelConfigError(
                "llamacpp models need the optional package llama-cpp-python: "
                "pip install 'vivace[llamacpp]'",
                provider=info.id,
            ) from exc
        path = os.path.abspath(os.path.expanduser(model_name))
        if not os.path.isfile(path):
            raise ModelConfigError(
                f"llamacpp model file not found: {path} (use 'llamacpp/<path-to.gguf>')",
                provider=info.id,
            )
        return cls(model_name, provider=info.id, options={**info.options, **(options or {})})

    def __repr__(self) -> str:
        return f"<LlamaCppModel {self.model_path}>"

    # -- prompt ------------------------------------------------------------------------------

    def _llm(self) -> Any:
        o = self.options
        extra = {k: o[k] for k in ("n_threads", "n_batch", "seed") if o.get(k) is not None}
        return _load(
            self.model_path, int(o.get("n_ctx", 4096)), int(o.get("n_gpu_layers", 0)), extra
        )

    def build_prompt(self, llm: Any, request: ModelRequest) -> tuple[str, list[str]]:
        """``(prompt, stop strings)`` for ``request`` (public for tests)."""
        system = [request.instructions] if request.instructions else []
        tools = request.tools
        out = request.output
        if tools:
            system.append(_tools_text(tools))
            if out is not None and out.mode == "native":
                system.append(
                    "When you give your final answer, reply with only JSON matching this schema: "
                    + json.dumps(out.schema)
                )
        turns: list[dict[str, str]] = []
        for message in request.messages:
            role, text = self._render(message)
            if role == "system":
                system.append(text)
                continue
            if not text:
                continue
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n\n" + text
            else:
                turns.append({"role": role, "content": text})
        template = self.options.get("chat_template") or (llm.metadata or {}).get(
            "tokenizer.chat_template"
        )
        if template and not self.options.get("plain_prompt"):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "replace")
            eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
            messages: Any = (
                [{"role": "system", "content": "\n\n".join(system)}] if system else []
            ) + turns
            resp = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(messages=messages)
            prompt = resp.prompt
            if bos and prompt.startswith(bos):
                prompt = prompt[len(bos) :]  # the tokenizer adds BOS itself
            stop = resp.stop if isinstance(resp.stop, list) else ([resp.stop] if resp.stop else [])
            return prompt, [s for s in stop if s]
        lines: list[str] = []
        if system:
            lines.append("\n\n".join(system) + "\n")
        for t in turns:
            lines.append(f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}")
        lines.append("Assistant:")
        return "\n".join(lines), ["\nUser:", "\nSystem:"]

    def _render(self, message: Message) -> tuple[str, str]:
        pieces: list[str] = []
        p: Any
        for p in message.parts:
            t = type(p)
            if t is TextPart:
                pieces.append(p.text)
            elif t is ToolCallPart:
                pieces.append(json.dumps({"tool": p.name, "arguments": p.arguments_dict()}))
            elif t is ToolResultPart:
                label = "error" if p.is_error else "result"
                pieces.append(f"Tool {p.name} {label}: {p.content_text()}")
            elif t is ReasoningPart:
                continue
            else:
                from ..protocols.base import unsupported_part

                raise unsupported_part("llamacpp", p, "local llama.cpp models here take text only")
        if message.role == "assistant":
            return "assistant", "\n".join(pieces)
        if message.role == "system":
            return "system", "\n".join(pieces)
        return "user", "\n".join(pieces)

    # -- generation --------------------------------------------------------------------------

    def _kwargs(self, llm: Any, request: ModelRequest, stop: list[str]) -> dict[str, Any]:
        s = request.settings or {}
        kw: dict[str, Any] = {
            "max_tokens": int(s.get("max_tokens") or self.options.get("default_max_tokens", 512)),
        }
        for key in (
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "repeat_penalty",
        ):
            if s.get(key) is not None:
                kw[key] = s[key]
        user_stop = s.get("stop")
        if user_stop:
            stop = stop + ([user_stop] if isinstance(user_stop, str) else list(user_stop))
        kw["stop"] = stop
        out = request.output
        if out is not None and out.mode == "native" and not request.tools:
            from llama_cpp import LlamaGrammar

            kw["grammar"] = LlamaGrammar.from_json_schema(json.dumps(out.schema), verbose=False)
        return kw

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        for m in request.messages:  # refuse unsupported parts before loading anything
            self._render(m)
        loop = asyncio.get_running_loop()
        llm = await asyncio.to_thread(self._llm)
        prompt, stop = self.build_prompt(llm, request)
        kwargs = self._kwargs(llm, request, stop)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()
        lock = _GEN_LOCKS[id(llm)]

        def put(item: tuple[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                with lock:
                    if cancel.is_set():
                        return
                    n_prompt = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
                    put(("prompt", n_prompt))
                    gen = llm.create_completion(prompt, stream=True, **kwargs)
                    try:
                        for chunk in gen:
                            if cancel.is_set():
                                break
                            put(("chunk", chunk))
                    finally:
                        close = getattr(gen, "close", None)
                        if close is not None:
                            close()
            except BaseException as exc:
                put(("error", exc))
            finally:
                put(("end", None))

        thread = threading.Thread(target=work, name="vivace-llamacpp", daemon=True)
        thread.start()
        text: list[str] = []
        held: list[str] = []  # with tools: text that may turn out to be a tool call
        holding = bool(request.tools)
        finish: str | None = None
        n_prompt = 0
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    break
                if kind == "prompt":
                    n_prompt = value
                elif kind == "error":
                    if isinstance(value, ModelError | UserError):
                        raise value
                    raise ModelError(
                        f"llamacpp/{self.model_name}: generation failed: {value}",
                        provider=self.provider,
                        model=self.model_name,
                    ) from value
                else:
                    choice = value["choices"][0]
                    piece = choice.get("text") or ""
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    if not piece:
                        continue
                    text.append(piece)
                    if holding:
                        held.append(piece)
                        head = "".join(held).lstrip()
                        if head and head[0] not in "{[`":
                            holding = False
                            yield TextDelta("".join(held))
                            held = []
                    else:
                        yield TextDelta(piece)
        finally:
            cancel.set()
        answer = "".join(text)
        parts: list[Part] = []
        calls = parse_tool_calls(answer, request.tools) if request.tools else None
        if calls:
            for i, (name, args) in enumerate(calls):
                cid = f"call_{os.urandom(6).hex()}"
                parts.append(ToolCallPart(cid, name, json.dumps(args)))
                yield ToolCallDelta(i, cid, name, json.dumps(args))
        else:
            if held:
                yield TextDelta("".join(held))
            if answer.strip():
                parts.append(TextPart(answer.strip() if request.tools else answer))
        n_out = len(llm.tokenize(answer.encode(), add_bos=False, special=True)) if answer else 0
        reason: FinishReason = (
            "tool_calls"
            if calls
            else "length"
            if finish == "length"
            else "stop"
            if finish in (None, "stop")
            else "unknown"
        )
        yield ModelResponse(
            parts,
            Usage(
                input_tokens=n_prompt, output_tokens=n_out, requests=1, tool_calls=len(calls or ())
            ),
            reason,
            os.path.basename(self.model_path),
            self.provider,
            None,
            None,
            finish,
        )


def _tools_text(tools: list[ToolDefinition]) -> str:
    specs = "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})
        for t in tools
    )
    return (
        "You can call these tools:\n"
        f"{specs}\n"
        'To call a tool, reply with only a JSON object {"tool": "<name>", "arguments": {...}} '
        "(or a JSON list of such objects) and nothing else. Otherwise answer normally."
    )
