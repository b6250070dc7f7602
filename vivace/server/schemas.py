"""Request and response bodies (pydantic), the single source of validation and of the
OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ID_PATTERN",
    "ID_SCHEMA",
    "AgentInfo",
    "AgentList",
    "ApprovalIn",
    "CancelOut",
    "ChatCompletionRequest",
    "ErrorBody",
    "Health",
    "MediaIn",
    "MemoryList",
    "ResponsesRequest",
    "ResumeRequest",
    "RunOut",
    "RunRequest",
    "SessionList",
    "SessionOut",
    "SessionPatch",
    "TextIn",
    "UserMemoryIn",
    "UserMemoryOut",
    "UserMemoryPatch",
    "WorkingMemory",
]

ID_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
"""Ids: any text but control characters (checked at the edge: 400 ``invalid_identifier``)."""
ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": ID_PATTERN,
}
B64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
B64_PATTERN = f"^{B64}$"
IMAGE_URL_PATTERN = f"^(?:https?://[^\\s]+|data:image/[a-z0-9.+-]+;base64,{B64})$"
FILE_DATA_PATTERN = (
    f"^(?:{B64}|data:(?:text/plain|application/(?:pdf|json|octet-stream));base64,{B64})$"
)

# the pattern is documented, not enforced by pydantic: a control character is a 400 naming
# the field (vivace.identifiers), not a 422
Id = Annotated[str, Field(min_length=1, max_length=256, json_schema_extra={"pattern": ID_PATTERN})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- inputs -------------------------------------------------------------------------------------


class TextIn(_Strict):
    """A text part."""

    kind: Literal["text"]
    text: str


_ONE_SOURCE: Any = {  # exactly one of data / url (the other absent or null)
    "oneOf": [
        {"required": ["data"], "properties": {"data": {"type": "string"}, "url": {"type": "null"}}},
        {"required": ["url"], "properties": {"url": {"type": "string"}, "data": {"type": "null"}}},
    ]
}


class MediaIn(_Strict):
    """An image, audio, video or file part: base64 ``data`` or a ``url`` (https or data:)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    kind: Literal["image", "audio", "video", "file"]
    data: str | None = Field(None, description="base64-encoded content")
    url: str | None = Field(None, description="an http(s) or data: URL")
    media_type: str | None = Field(None, max_length=255, description="e.g. image/png")
    name: str | None = Field(None, max_length=255)


# The documented shape of each kind (what the default ``allowed_media_types`` accept); the
# server checks the same at run time with 400/415 answers.
_TYPE = "[A-Za-z0-9][A-Za-z0-9.+-]*"
_FILE_TYPES = f"(?:(?:image|audio|video|text)/{_TYPE}|application/(?:pdf|json|octet-stream))"


class ImageIn(MediaIn):
    """An image part."""

    kind: Literal["image"]
    data: Annotated[str | None, Field(json_schema_extra={"pattern": B64_PATTERN})] = None
    url: Annotated[str | None, Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})] = None
    media_type: Annotated[
        str | None, Field(max_length=255, json_schema_extra={"pattern": f"^image/{_TYPE}$"})
    ] = None


class AudioIn(MediaIn):
    """An audio part."""

    kind: Literal["audio"]
    data: Annotated[str | None, Field(json_schema_extra={"pattern": B64_PATTERN})] = None
    url: Annotated[
        str | None,
        Field(
            json_schema_extra={"pattern": f"^(?:https?://[^\\s]+|data:audio/{_TYPE};base64,{B64})$"}
        ),
    ] = None
    media_type: Annotated[
        str | None, Field(max_length=255, json_schema_extra={"pattern": f"^audio/{_TYPE}$"})
    ] = None


class VideoIn(MediaIn):
    """A video part."""

    kind: Literal["video"]
    data: Annotated[str | None, Field(json_schema_extra={"pattern": B64_PATTERN})] = None
    url: Annotated[
        str | None,
        Field(
            json_schema_extra={"pattern": f"^(?:https?://[^\\s]+|data:video/{_TYPE};base64,{B64})$"}
        ),
    ] = None
    media_type: Annotated[
        str | None, Field(max_length=255, json_schema_extra={"pattern": f"^video/{_TYPE}$"})
    ] = None


class FileIn(MediaIn):
    """A file part (PDF, text, JSON...)."""

    kind: Literal["file"]
    data: Annotated[str | None, Field(json_schema_extra={"pattern": B64_PATTERN})] = None
    url: Annotated[
        str | None,
        Field(
            json_schema_extra={"pattern": f"^(?:https?://[^\\s]+|data:{_FILE_TYPES};base64,{B64})$"}
        ),
    ] = None
    media_type: Annotated[
        str | None, Field(max_length=255, json_schema_extra={"pattern": f"^{_FILE_TYPES}$"})
    ] = None


InputPart = Annotated[TextIn | ImageIn | AudioIn | VideoIn | FileIn, Field(discriminator="kind")]
RunInput = str | Annotated[list[InputPart], Field(min_length=1, max_length=256)]


class RunRequest(_Strict):
    """Start a run. ``input`` is text or a list of content parts."""

    input: RunInput
    session_id: Id | None = None
    user_id: Id | None = None
    stream: bool = False
    session_state: dict[str, Any] | None = None
    model_settings: dict[str, Any] | None = Field(
        None, description="temperature, max_tokens, top_p, seed... for this run"
    )
    max_steps: int | None = Field(None, ge=1, le=1000)
    model: str | None = Field(
        None,
        min_length=3,
        max_length=256,
        description="this run's model ('provider/model'), when the server allows it "
        "(VivaceApp(model_override=...): by default admins, and everyone on a server open to "
        "localhost only); 403 otherwise",
    )


class ApprovalIn(_Strict):
    """A decision for one pending tool call."""

    approve: bool
    arguments: dict[str, Any] | None = Field(None, description="edited arguments (approve only)")
    reason: str | None = Field(None, description="why it was rejected (sent to the model)")


class ResumeRequest(_Strict):
    """Resume a paused run: a decision for every pending call (``true``/``false`` or an object)."""

    approvals: dict[str, bool | ApprovalIn]
    stream: bool = False
    model: str | None = Field(
        None, min_length=3, max_length=256, description="the model to continue with (as for runs)"
    )


class SessionPatch(_Strict):
    """Rename a session and/or change session state keys."""

    name: str | None = Field(None, max_length=512)
    state: dict[str, Any] | None = Field(None, description="keys to set")
    delete_state: list[str] | None = Field(None, description="keys to delete")


class WorkingMemory(_Strict):
    content: str | None = Field(None, description="the working memory text (null when empty)")


class UserMemoryIn(_Strict):
    content: str = Field(min_length=1, max_length=100_000)
    topics: list[str] = Field(default_factory=list, max_length=64)
    agent_id: Id | None = None


class UserMemoryPatch(_Strict):
    content: str | None = Field(None, min_length=1, max_length=100_000)
    topics: list[str] | None = Field(None, max_length=64)


# -- outputs ------------------------------------------------------------------------------------


class ErrorDetail(_Open):
    type: str
    code: str
    message: str
    param: str | None = None
    trace_id: str | None = Field(
        None, description="the request's trace (its log lines and the run it started carry it)"
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class ToolInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    requires_approval: bool


class AgentInfo(BaseModel):
    id: str
    name: str | None
    description: str | None
    model: str | list[str] | None
    tools: list[ToolInfo]


class AgentList(BaseModel):
    agents: list[AgentInfo]


class RunOut(_Open):
    """A run result (``status``: completed, paused, failed, cancelled or blocked)."""

    run_id: str
    session_id: str | None
    user_id: str | None
    status: str
    output: Any = None
    messages: list[dict[str, Any]]
    usage: dict[str, int | float] = Field(description="token counts, and `cost` (USD) when known")
    error: dict[str, Any] | None
    paused: dict[str, Any] | None
    trace_id: str | None = Field(None, description="the run's trace (32 hex digits)")
    span_id: str | None = Field(None, description="the run's span (16 hex digits)")
    parent_run_id: str | None = None


class CancelOut(BaseModel):
    run_id: str
    cancelled: bool


class SessionOut(_Open):
    session_id: str
    agent_id: str | None
    user_id: str | None
    name: str | None
    state: dict[str, Any]
    created_at: float
    updated_at: float
    metadata: dict[str, Any]


class SessionList(BaseModel):
    sessions: list[SessionOut]
    limit: int
    offset: int


class UserMemoryOut(_Open):
    memory_id: str
    user_id: str
    content: str
    agent_id: str | None = None
    topics: list[str]


class MemoryList(BaseModel):
    memories: list[UserMemoryOut]


class Deleted(BaseModel):
    deleted: bool


# -- OpenAI-compatible --------------------------------------------------------------------------


def _pattern(p: str) -> Any:
    return Field(json_schema_extra={"pattern": p})


class TextContent(_Open):
    type: Literal["text", "input_text", "output_text"]
    text: str


class ImageURL(_Open):
    url: Annotated[str, _pattern(IMAGE_URL_PATTERN)]


class ImageURLContent(_Open):
    type: Literal["image_url"]
    image_url: ImageURL | Annotated[str, _pattern(IMAGE_URL_PATTERN)]


class InputImageContent(_Open):
    type: Literal["input_image"]
    image_url: Annotated[str, _pattern(IMAGE_URL_PATTERN)]


class AudioData(_Open):
    data: Annotated[str, _pattern(B64_PATTERN)] = Field(description="base64 audio")
    format: Literal["wav", "mp3"] | None = None


class InputAudioContent(_Open):
    type: Literal["input_audio"]
    input_audio: AudioData


class FileData(_Open):
    file_data: Annotated[str, _pattern(FILE_DATA_PATTERN)] = Field(
        description="base64, or a data: URL"
    )
    filename: str | None = None


class FileContent(_Open):
    type: Literal["file"]
    file: FileData


class InputFileContent(FileData):
    type: Literal["input_file"]


ContentPart = Annotated[
    TextContent
    | ImageURLContent
    | InputImageContent
    | InputAudioContent
    | FileContent
    | InputFileContent,
    Field(discriminator="type"),
]
Content = str | list[ContentPart]


class ChatMessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content | None = None


_HAS_USER = {
    "contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]}
}


class ChatCompletionRequest(_Open):
    """OpenAI ``/v1/chat/completions`` (``model`` is the agent id; extra fields are ignored).

    The last user message is the input; the conversation needs one."""

    model: Id
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, json_schema_extra=_HAS_USER)]
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    user: Id | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None


class ResponsesItemIn(_Open):
    """A message item of ``/v1/responses`` input (other item types are not supported)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Content


class ResponsesRequest(_Open):
    """OpenAI ``/v1/responses`` (``model`` is the agent id; extra fields are ignored)."""

    model: Id
    input: str | Annotated[list[ResponsesItemIn], Field(min_length=1, json_schema_extra=_HAS_USER)]
    stream: bool | None = False
    user: Id | None = None
    instructions: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
