"""OpenTelemetry GenAI semantic-convention names, and Vivace's own attributes.

https://opentelemetry.io/docs/specs/semconv/gen-ai/ (development status). The deprecated
names (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``...) are never written.
"""

from __future__ import annotations

from typing import Any

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
REASONING_TOKENS = "vivace.usage.reasoning_tokens"
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_DESCRIPTION = "gen_ai.agent.description"
WORKFLOW_NAME = "gen_ai.workflow.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
ERROR_TYPE = "error.type"

# Vivace's own
RUN_ID = "vivace.run_id"
PARENT_RUN_ID = "vivace.parent_run_id"
SESSION_ID = "vivace.session_id"
USER_ID = "vivace.user_id"
RUN_STATUS = "vivace.run.status"
STEP = "vivace.step"
COST = "vivace.cost_usd"
SPAN_TYPE = "vivace.span_type"  # agent_run, workflow_run, model_request, tool_call, mcp, ...
LOCAL_ROOT = "vivace.local_root"  # a run whose parent span is in another process

# provider names the conventions define, by Vivace provider prefix
_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}


def provider_name(provider: str | None) -> str:
    """The convention's ``gen_ai.provider.name`` for a Vivace provider prefix."""
    if not provider:
        return "unknown"
    return _PROVIDERS.get(provider, provider)


def model_parts(model: Any) -> tuple[str | None, str | None]:
    """``(provider, model_name)`` of a model string, a Model object or a fallback list."""
    if isinstance(model, list | tuple):
        model = model[0] if model else None
    inner = getattr(model, "models", None)  # a FallbackModel: its first model
    if isinstance(inner, list) and inner:
        model = inner[0]
    if model is None:
        return None, None
    if isinstance(model, str):
        provider, _, name = model.partition("/")
        return (provider, name) if name else (None, provider)
    return getattr(model, "provider", None), getattr(model, "model_name", None)
