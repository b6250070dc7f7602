"""Agentic and classic RAG: Agent(knowledge=kb) gets a typed search tool and instructions;
knowledge_mode="context" puts the top chunks in the prompt; citations on the run result and
in events."""

from __future__ import annotations

import json

import pytest

from vivace import Agent
from vivace.errors import UserError
from vivace.knowledge import KnowledgeBase
from vivace.testing import FunctionModel, ScriptedModel, call

from .conftest import corpus_documents


@pytest.fixture
async def kb(embedder) -> KnowledgeBase:
    kb = KnowledgeBase(
        "handbook", store="memory", embedder=embedder, description="the company handbook",
        filters={"year": int, "team": str},
    )  # fmt: skip
    await kb.aadd(*corpus_documents())
    return kb


def test_the_search_tool_schema_types_the_declared_filters(kb: KnowledgeBase) -> None:
    [tool] = kb.tools()
    assert kb.tools()[0] is tool  # built once
    d = tool.definition()
    assert d.name == "search_knowledge" and "handbook" in d.description
    props = d.parameters["properties"]
    assert d.parameters["required"] == ["query"]
    filters = props["filters"]["properties"]
    assert set(filters) == {"source", "year", "team"}
    year = filters["year"]["anyOf"]
    assert year[0] == {"type": "integer"}
    assert year[1]["properties"]["in"]["items"] == {"type": "integer"}
    assert set(year[2]["properties"]) == {"gt", "gte", "lt", "lte"}
    assert filters["team"]["anyOf"][0] == {"type": "string"} and len(filters["team"]["anyOf"]) == 2
    assert props["filters"]["additionalProperties"] is False
    json.dumps(d.parameters)


async def test_agent_searches_and_the_result_and_events_carry_citations(kb: KnowledgeBase) -> None:
    model = ScriptedModel(
        [
            call(
                "search_knowledge", {"query": "expired license key", "filters": {"team": "support"}}
            ),
            "Renew it [errors.txt].",
        ]
    )
    agent = Agent(model, knowledge=kb)
    stream = agent.astream("What does E4417 mean?")
    events = [e async for e in stream]
    result = stream.result
    assert result is not None and result.output == "Renew it [errors.txt]."
    [cite] = result.citations
    assert (
        cite["source"] == "errors.txt"
        and cite["position"] == 0
        and cite["knowledge_base"] == "handbook"
    )
    assert cite["score"] > 0 and "E4417" in cite["text"]
    assert result.to_dict()["citations"] == result.citations
    done = [e for e in events if e.type == "tool_call_completed"]
    assert done and done[0].result["passages"][0]["source"] == "errors.txt"
    # the instructions told the model about the knowledge base
    system = model.requests[0].instructions or ""
    assert "handbook" in system and "search_knowledge" in system


async def test_invalid_filters_go_back_to_the_model(kb: KnowledgeBase) -> None:
    model = ScriptedModel(
        [
            call("search_knowledge", {"query": "cats", "filters": {"colour": "black"}}),
            call("search_knowledge", {"query": "cats", "filters": {"year": "2019"}}),
            call("search_knowledge", {"query": "cats", "filters": {"year": 2019}}),
            "Cats purr.",
        ]
    )
    result = await Agent(model, knowledge=kb).arun("Tell me about cats")
    assert result.output == "Cats purr."
    tool_results = [
        p for m in result.messages for p in m.parts if getattr(p, "kind", "") == "tool_result"
    ]
    errors = [p for p in tool_results if p.is_error]
    assert len(errors) == 2
    assert "colour" in str(errors[0].content) and "integer" in str(errors[1].content)
    assert [c["source"] for c in result.citations] == ["cats.txt"]


async def test_context_mode_puts_the_top_chunks_in_the_prompt(kb: KnowledgeBase) -> None:
    seen: list[str] = []

    def answer(messages, request):
        seen.append(request.instructions or "")
        return "It is Paris [1]."

    agent = Agent(FunctionModel(answer), knowledge=kb, knowledge_mode="context")
    result = await agent.arun("What is the capital of France?")
    assert result.output == "It is Paris [1]."
    assert "[1] source: paris.txt" in seen[0] and "Eiffel" in seen[0]
    assert result.citations[0]["source"] == "paris.txt"
    assert not agent.run_capabilities()[0].tools()  # no tool in classic mode
    ctx_agent = Agent(
        FunctionModel(answer), knowledge=kb.context(top_k=1, filters={"team": "pets"})
    )
    seen.clear()
    r = await ctx_agent.arun("What is the capital of France?")
    assert [c["source"] for c in r.citations] == ["cats.txt"] and "paris" not in seen[0]


async def test_runs_without_retrievals_have_no_citations(kb: KnowledgeBase) -> None:
    result = await Agent(ScriptedModel(["hi"]), knowledge=kb).arun("hello")
    assert result.citations == [] and "citations" not in result.to_dict()
    plain = await Agent(ScriptedModel(["hi"])).arun("hello")
    assert plain.citations == []


def test_agent_construction_only_stores_the_knowledge_base(kb: KnowledgeBase) -> None:
    agent = Agent("test/echo", knowledge=kb)
    assert agent.knowledge is kb and agent.run_capabilities() == (kb,)
    assert Agent("test/echo").knowledge is None
    with pytest.raises(UserError, match="knowledge_mode"):
        Agent("test/echo", knowledge=kb, knowledge_mode="magic")


async def test_one_knowledge_base_serves_concurrent_agents(kb: KnowledgeBase) -> None:
    import asyncio

    async def one(q: str, expect: str) -> None:
        model = ScriptedModel([call("search_knowledge", {"query": q, "top_k": 1}), "ok"])
        r = await Agent(model, knowledge=kb).arun(q)
        assert [c["source"] for c in r.citations] == [expect]

    await asyncio.gather(
        one("purring pets", "cats.txt"),
        one("French capital", "paris.txt"),
        one("deepest ocean", "ocean.txt"),
    )


def test_sync_api_and_agent_runs_share_one_store(kstore, embedder) -> None:
    """The sync wrappers and Agent.run use their own event loops: every store works from any."""
    kb = KnowledgeBase("sync", store=kstore, embedder=embedder)
    report = kb.add(*corpus_documents())
    assert report.added == 5
    model = ScriptedModel(
        [call("search_knowledge", {"query": "capital of France", "top_k": 1}), "Paris."]
    )
    result = Agent(model, knowledge=kb).run("Capital of France?")
    assert [c["source"] for c in result.citations] == ["paris.txt"]
    assert kb.search("purring", top_k=1)[0].source == "cats.txt"
    assert kb.delete("cats.txt") == 1
