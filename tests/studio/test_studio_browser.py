"""Each Studio screen's main task, end to end in headless Chromium against a live server
with test models, asserting what a person sees."""

from __future__ import annotations

import os
import re
from typing import Any

import httpx
from playwright.sync_api import expect

from .conftest import LiveServer, start_server, stop_server

SHOTS = os.environ.get("VIVACE_STUDIO_SCREENSHOTS")  # a folder: save each screen there


def shot(page: Any, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"studio-{name}.png"))


def open_chat(page: Any, server: LiveServer, session: str) -> None:
    page.goto(f"{server.url}/studio#/agents/assistant/{session}")
    expect(page.locator("#composer")).to_be_visible()


def say(page: Any, text: str) -> Any:
    page.fill("#composer", text)
    page.click("#send")
    return page.locator(".msg.assistant").last


def test_chat_streams_a_tool_call_and_an_approved_call(page: Any, live_server: LiveServer) -> None:
    open_chat(page, live_server, "s-chat")
    turn = say(page, "What is the weather in Rome")
    card = turn.locator(".tool")
    expect(card.locator("strong")).to_have_text("get_weather")
    expect(card.locator(".args")).to_contain_text('"city": "Rome"')
    expect(card.locator(".result")).to_contain_text('"sky": "sunny"')
    expect(card.locator(".status")).to_have_text("done")
    expect(turn.locator(".text")).to_contain_text("Done: get_weather returned")
    expect(turn.locator(".usage")).to_contain_text("tokens")

    turn = say(page, "please delete /tmp/old.log")
    card = turn.locator(".tool")
    expect(card.locator(".status")).to_have_text("waiting for approval")
    expect(card.locator(".args")).to_contain_text("/tmp/old.log")
    shot(page, "agents")
    # the composer is never locked while a call waits
    expect(page.locator("#composer")).to_be_enabled()
    card.locator("button.approve").click()
    expect(card.locator(".result")).to_contain_text("deleted /tmp/old.log")
    expect(turn.locator(".text")).to_contain_text("Done: delete_file returned deleted /tmp/old.log")
    expect(card.locator(".actions")).to_have_text("approved")

    # the session is listed and its history survives a reload
    expect(page.locator("#sessions")).to_contain_text("s-chat")
    page.reload()
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".tool strong")).to_have_text(["get_weather", "delete_file"])


def test_declining_a_call_tells_the_model(page: Any, live_server: LiveServer) -> None:
    open_chat(page, live_server, "s-decline")
    turn = say(page, "delete /etc/passwd")
    card = turn.locator(".tool")
    card.locator("button.decline").click()
    expect(card.locator(".status")).to_have_text("error")
    expect(turn.locator(".text")).to_contain_text("The delete_file call did not happen: rejected")


def test_model_settings_reach_the_next_run(page: Any, live_server: LiveServer) -> None:
    open_chat(page, live_server, "s-settings")
    page.fill("#temperature", "0.3")
    page.fill("#max-tokens", "77")
    page.locator("#max-tokens").dispatch_event("change")
    page.locator("#temperature").dispatch_event("change")
    turn = say(page, "hello there")
    expect(turn.locator(".text")).to_have_text("You said: hello there")
    turn.locator("a.trace-link").click()
    page.locator(".span-row", has_text="chat studio-test").click()
    detail = page.locator("#span-detail")
    expect(detail.locator("tr", has_text="gen_ai.request.temperature")).to_contain_text("0.3")
    expect(detail.locator("tr", has_text="gen_ai.request.max_tokens")).to_contain_text("77")


def test_choosing_the_model_for_the_next_run(page: Any, live_server: LiveServer) -> None:
    open_chat(page, live_server, "s-model")
    model = page.locator("#model")
    expect(model).to_be_enabled()
    expect(model).to_have_attribute("placeholder", "test/studio-test")
    turn = say(page, "hello there")
    expect(turn.locator(".text")).to_have_text("You said: hello there")
    expect(turn.locator(".model-used")).to_have_text("test/studio-test")
    # the datalist offers the agents' models; any string may be typed
    expect(page.locator("#model-options option[value='test/echo']")).to_have_count(1)
    model.fill("test/echo")
    model.dispatch_event("change")
    turn = say(page, "echo this back")
    expect(turn.locator(".text")).to_have_text("echo: echo this back")
    expect(turn.locator(".model-used")).to_have_text("test/echo")
    turn.locator("a.trace-link").click()
    expect(page.locator(".span-row .span-name")).to_have_text(
        ["invoke_agent assistant", "storage begin_run", "chat echo", "storage finish_run"]
    )
    # a model that does not resolve is refused before any run starts
    open_chat(page, live_server, "s-model")
    page.fill("#model", "nosuchprovider/x")
    page.locator("#model").dispatch_event("change")
    turn = say(page, "hi")
    expect(turn.locator(".error-box")).to_contain_text("nosuchprovider")


def test_open_a_trace_from_a_chat_turn(page: Any, live_server: LiveServer) -> None:
    open_chat(page, live_server, "s-trace")
    turn = say(page, "weather in Oslo")
    expect(turn.locator(".text")).to_contain_text("Oslo")
    turn.locator("a.trace-link").click()
    expect(page).to_have_url(re.compile(r"#/traces/[0-9a-f]{32}$"))
    rows = page.locator(".span-row .span-name")
    expect(rows).to_have_text(
        [
            "invoke_agent assistant",
            "storage begin_run",
            "chat studio-test",
            "execute_tool get_weather",
            "chat studio-test",
            "storage finish_run",
        ]
    )
    page.locator(".span-row", has_text="execute_tool get_weather").click()
    detail = page.locator("#span-detail")
    expect(detail.locator("h2")).to_have_text("execute_tool get_weather")
    expect(detail.locator("tr", has_text="gen_ai.tool.name")).to_contain_text("get_weather")
    expect(detail.locator("tr", has_text="gen_ai.tool.call.id")).to_contain_text("call_")
    page.locator(".span-row", has_text="invoke_agent assistant").click()
    expect(detail.locator("tr", has_text="gen_ai.usage.input_tokens")).to_be_visible()
    shot(page, "trace")

    page.click("text=<- All traces")
    expect(page.locator(".trace-row").first).to_contain_text("invoke_agent assistant")
    page.select_option("#filter-agent", "echo")
    expect(page.locator("#trace-rows")).to_contain_text("No traces yet")
    page.select_option("#filter-agent", "assistant")
    expect(page.locator(".trace-row").first).to_be_visible()
    shot(page, "traces")


def test_metrics_show_runs_tokens_and_latency(page: Any, live_server: LiveServer) -> None:
    for i in range(3):
        r = httpx.post(
            f"{live_server.url}/agents/assistant/runs",
            json={"input": f"weather in Town{i}", "user_id": "m"},
            timeout=10,
        )
        assert r.status_code == 200
    page.goto(f"{live_server.url}/studio#/metrics")
    table = page.locator("#metrics-table")
    expect(table).to_contain_text("assistant")
    expect(table).to_contain_text("studio-test")
    runs = page.locator(".card", has_text="Runs").first.locator(".big")
    expect(runs).not_to_have_text("0")
    shot(page, "metrics")
    prom = httpx.get(f"{live_server.url}/metrics").text
    assert 'vivace_runs_total{agent="assistant",status="completed"}' in prom
    assert "gen_ai_client_operation_duration_seconds_bucket" in prom


def test_run_a_tool_from_the_playground(page: Any, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/studio#/tools/assistant/get_weather")
    expect(page.locator("h1")).to_have_text("get_weather")
    expect(page.locator("label[for=arg-city]")).to_contain_text("city")
    page.fill("#arg-city", "Lisbon")
    page.fill("#arg-unit", "F")
    page.click("#run-tool")
    expect(page.locator("#tool-status")).to_contain_text("ok in")
    expect(page.locator("#tool-result")).to_contain_text('"city": "Lisbon"')
    expect(page.locator("#tool-result")).to_contain_text('"temperature": 72')
    shot(page, "tools")
    page.fill("#arg-city", "")
    page.click("#run-tool")
    expect(page.locator("#tool-status")).to_have_text("error")
    expect(page.locator("#tool-result")).to_contain_text("city")


def test_with_auth_on_the_studio_asks_for_a_key(page: Any, tmp_path: Any) -> None:
    server = start_server(
        tmp_path, {"VIVACE_API_KEY": "studio-key-123456", "VIVACE_MODEL_OVERRIDE": "0"}
    )
    try:
        assert httpx.get(server.url + "/studio/api/traces").status_code == 401
        page.goto(f"{server.url}/studio")
        dialog = page.locator("#login")
        expect(dialog).to_be_visible()
        page.fill("#login-token", "wrong-key")
        page.click("#login button")
        expect(page.locator("#login-error")).to_contain_text("not accepted")
        page.fill("#login-token", "studio-key-123456")
        page.click("#login button")
        expect(dialog).to_be_hidden()
        expect(page.locator("#agent-select")).to_contain_text("assistant")
        turn = say(page, "hi")
        expect(turn.locator(".text")).to_have_text("You said: hi")
        # this server lets nobody choose the model: the field shows the agent's, locked
        expect(page.locator("#model")).to_be_disabled()
        expect(page.locator("#model")).to_have_value("test/studio-test")
    finally:
        stop_server(server)


def test_chat_shows_the_sources_a_knowledge_search_returned(
    page: Any, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.url}/studio#/agents/librarian/s-sources")
    expect(page.locator("#composer")).to_be_visible()
    turn = say(page, "what does the handbook say about the vpn")
    card = turn.locator(".tool")
    expect(card.locator("strong")).to_have_text("search_knowledge")
    expect(card.locator(".status")).to_have_text("done")
    sources = card.locator(".sources li")
    expect(sources.first).to_contain_text("#0")
    expect(card.locator(".sources")).to_contain_text("vpn.md")
    expect(card.locator(".sources")).to_contain_text("score")
    shot(page, "sources")


def test_a_workflow_run_started_suspended_and_resumed_from_its_forms(
    page: Any, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.url}/studio#/workflows/orders")
    graph = page.locator("#wf-graph")
    # the graph: steps in order, the fan-out's branches inside it
    expect(graph.locator(".wf-node .wf-label")).to_have_text(
        ["load_order", "approve", "parallel", "price", "stock", "map", "writer"]
    )
    parallel = graph.locator('.wf-node[data-node^="parallel"]')
    expect(parallel.locator('.wf-node[data-node="stock"]')).to_be_visible()
    # the start form comes from the input's JSON Schema (a string: one field)
    page.fill("#in-input", "big-42")
    page.click("#start-run")
    expect(page).to_have_url(re.compile(r"#/workflows/orders/[0-9a-f]{32}$"))
    run_url = page.url
    expect(page.locator("#run-status")).to_have_text("suspended")
    expect(graph.locator('.wf-node[data-node="load_order"] .wf-status')).to_contain_text(
        "completed"
    )
    expect(graph.locator('.wf-node[data-node="approve"] .wf-status')).to_have_text("suspended")
    # the resume form comes from the step's resume schema (Approval: ok, by)
    form = page.locator('.resume-form[data-path="approve"]')
    expect(form).to_contain_text('"amount": 1250')
    expect(form.locator("label[for=resume-approve-ok]")).to_contain_text("ok")
    shot(page, "workflow-suspended")
    form.locator("#resume-approve-ok").check()
    form.locator("#resume-approve-by").fill("ann")
    form.locator("button.resume-button").click()
    # live status while the run goes on: the slow branch is seen running, then done
    stock = graph.locator('.wf-node[data-node="stock"] .wf-status')
    expect(stock).to_contain_text("running")
    expect(stock).to_contain_text("completed")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-output")).to_contain_text("Summary: price 1500.0, stock 7")
    expect(graph.locator('.wf-node[data-node="writer"] .wf-status')).to_contain_text("completed")
    # history: each step with its input, output and timing
    rows = page.locator("#step-rows .step-row")
    expect(rows.locator("td.mono")).to_have_text(
        ["load_order", "approve", "price", "stock", "writer"]
    )
    price_row = page.locator('.step-row[data-path="price"]')
    expect(price_row.locator(".step-input")).to_contain_text('"amount": 1250')
    expect(price_row.locator(".step-output")).to_have_text("1500")
    expect(page.locator('.step-row[data-path="writer"] .step-input')).to_contain_text(
        "price 1500.0, stock 7"
    )
    expect(page.locator("#runs a.active")).to_contain_text("completed")
    shot(page, "workflows")
    # its trace: the workflow run with its steps and the agent step's run inside
    page.locator("#wf-panel a.trace-link").click()
    expect(page.locator(".span-row .span-name").first).to_have_text("invoke_workflow orders")
    expect(page.locator(".span-row", has_text="invoke_agent writer")).to_be_visible()
    # time travel: re-run from a step, as a new run that remembers where it came from
    page.goto(run_url)
    page.locator('.step-row[data-path="price"] button.time-travel').click()
    expect(page).not_to_have_url(run_url)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#wf-panel")).to_contain_text("re-run of")


def test_a_bad_workflow_input_is_shown_not_started(page: Any, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/studio#/workflows/orders")
    page.click("#start-run")  # the required input is missing
    expect(page.locator("#start-status")).to_contain_text("input")
    expect(page).to_have_url(re.compile(r"#/workflows/orders$"))
