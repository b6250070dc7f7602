"""Running workflows: control flow, events, results, state, retries, timeouts, bail, cancel."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from vivace.errors import UnexpectedError
from vivace.workflows import (
    ResumeDataInvalid,
    StepContext,
    StepFailed,
    StepNotSuspended,
    StepTimeout,
    Workflow,
    WorkflowInputInvalid,
    WorkflowRunExists,
    step,
)


class Order(BaseModel):
    id: str
    amount: float


@step
def parse(text: str) -> Order:
    return Order(id=text, amount=10.0)


@step
async def double(o: Order) -> Order:
    await asyncio.sleep(0)
    return Order(id=o.id, amount=o.amount * 2)


@step
def inc(n: int) -> int:
    return n + 1


@step
async def ainc(n: int) -> int:
    await asyncio.sleep(0)
    return n + 1


@step
def to_list(n: int) -> list[int]:
    return list(range(n))


async def test_sequence_result_and_step_records():
    wf = Workflow("seq").then(parse).then(double)
    r = await wf.arun("o-1", run_id="my-run")
    assert r.run_id == "my-run"
    assert r.status == "completed"
    assert r.output == Order(id="o-1", amount=20.0)
    assert list(r.steps) == ["parse", "double"]
    rec = r.steps["double"]
    assert rec.status == "completed" and rec.attempts == 1
    assert rec.finished_at >= rec.started_at > 0
    assert r.to_dict()["steps"]["parse"]["output"] == {"id": "o-1", "amount": 10.0}
    # sync API
    assert wf.run("x").output.amount == 20.0


async def test_input_is_validated_and_run_ids_are_unique():
    wf = Workflow("v", input=Order).then(double)
    r = await wf.arun({"id": "a", "amount": 2})
    assert r.output.amount == 4
    with pytest.raises(WorkflowInputInvalid):
        await wf.arun({"id": "a"})

    @step(resume=bool)
    async def wait(o: Order, ctx: StepContext) -> Order:
        await ctx.suspend()
        return o

    wf2 = Workflow("v2", input=Order).then(wait)
    await wf2.arun({"id": "a", "amount": 1}, run_id="same")
    with pytest.raises(WorkflowRunExists):
        await wf2.arun({"id": "a", "amount": 1}, run_id="same")


async def test_parallel_branch_loops_foreach_map():
    @step
    def price(o: Order) -> float:
        return o.amount * 3

    @step
    async def tax(o: Order) -> float:
        return o.amount * 0.2

    wf = (
        Workflow("all")
        .then(parse)
        .parallel([price, tax])
        .map(lambda r: int(r["price"] + r["tax"]), output=int)
        .branch([(lambda n: n > 100, inc), (lambda n: n > 10, ainc)])
        .map(lambda d: d["ainc"], output=int)
        .dowhile(inc.with_id("grow"), lambda n: n < 40)
        .dountil(ainc.with_id("grow2"), lambda n: n >= 45)
        .then(to_list)
        .foreach(ainc.with_id("each"), concurrency=3)
    )
    stream = wf.astream("o")
    events = [e async for e in stream]
    r = stream.result
    assert r.status == "completed"
    assert r.output == [i + 1 for i in range(45)]
    assert r.steps["price"].output == 30.0 and r.steps["tax"].output == 2.0
    assert "inc" not in r.steps and r.steps["ainc"].output == 33
    assert r.steps["grow[6]"].output == 40
    assert "grow[7]" not in r.steps
    assert r.steps["grow2[4]"].output == 45
    assert r.steps["each[44]"].output == 45
    skipped = [e.path for e in events if e.type == "step_skipped"]
    assert skipped == ["inc"]
    # one gap-free sequence with the trace on every event
    assert [e.seq for e in events] == list(range(len(events)))
    assert {e.trace_id for e in events} == {r.trace_id}
    assert len(r.trace_id) == 32 and len(r.span_id) == 16
    assert events[0].type == "workflow_started" and events[-1].type == "workflow_completed"
    d = events[-1].to_dict()
    assert d["run_id"] == r.run_id and d["trace_id"] == r.trace_id and "span_id" in d


async def test_foreach_respects_concurrency_and_keeps_order():
    running = 0
    peak = 0

    @step
    async def slow(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (n % 3))
        running -= 1
        return n * 2

    wf = Workflow("fe", input=list[int]).foreach(slow, concurrency=4)
    r = await wf.arun(list(range(20)))
    assert r.output == [n * 2 for n in range(20)]
    assert peak == 4


async def test_nested_workflow_paths_and_branch_with_state():
    inner = Workflow("inner", input=int).then(inc).then(ainc)
    wf = (
        Workflow("outer", input=int)
        .then(inner)
        .branch([(lambda n, state: state.get("vip", False), inc), (lambda n: True, ainc)])
    )
    r = await wf.arun(1, state={"vip": True})
    assert r.steps["inner.inc"].output == 2 and r.steps["inner.ainc"].output == 3
    assert r.output == {"inc": 4}
    r = await wf.arun(1)
    assert r.output == {"ainc": 4}


async def test_shared_state_typed():
    class Totals(BaseModel):
        count: int = 0
        seen: list[str] = []

    @step(state=Totals)
    def add(o: Order, ctx: StepContext[Any]) -> Order:
        ctx.state.count += 1
        ctx.state.seen.append(o.id)
        return o

    wf = Workflow("st", state=Totals).then(parse).then(add).then(add.with_id("add2"))
    r = await wf.arun("z")
    assert r.state == Totals(count=2, seen=["z", "z"])
    r2 = await wf.arun("y", state={"count": 10})
    assert r2.state.count == 12  # state given to the run, validated
    for bad in ({"count": "many"}, [1]):  # a typed error naming the state, no run started
        with pytest.raises(WorkflowInputInvalid, match="invalid state"):
            await wf.arun("x", state=bad, run_id="bad-state")
    assert (await wf.arun("x", run_id="bad-state")).status == "completed"


async def test_retries_with_backoff_then_success_and_final_failure():
    calls = {"n": 0}

    @step(retries=2, backoff=0.001)
    def flaky(n: int) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ValueError(f"boom {calls['n']}")
        return n

    stream = Workflow("r", input=int).then(flaky).astream(5)
    events = [e async for e in stream]
    assert stream.result.output == 5
    retrying = [e for e in events if e.type == "step_retrying"]
    assert [e.attempt for e in retrying] == [2, 3]
    assert retrying[0].error["code"] == "unexpected_error"
    assert stream.result.steps["flaky"].attempts == 3

    @step(retries=1, backoff=0)
    def broken(n: int) -> int:
        raise KeyError("nope")

    inner = Workflow("inner", input=int).then(broken)
    wf = Workflow("outer", input=int).then(inc).then(inner)
    stream = wf.astream(1)
    events = [e async for e in stream]
    r = stream.result
    assert r.status == "failed"
    assert isinstance(r.error, StepFailed) and r.error.step == "inner.broken"
    assert isinstance(r.error.__cause__, KeyError)
    with pytest.raises(StepFailed, match=r"inner\.broken"):
        _ = r.output
    assert r.steps["inner.broken"].status == "failed" and r.steps["inner.broken"].attempts == 2
    assert events[-1].type == "workflow_failed"
    assert events[-1].error["details"]["step"] == "inner.broken"
    assert [e.type for e in events].count("step_failed") == 1


async def test_timeouts_sync_and_async():
    @step(timeout=0.05)
    async def slow_async(n: int) -> int:
        await asyncio.sleep(5)
        return n

    @step(timeout=0.05)
    def slow_sync(n: int) -> int:
        time.sleep(0.5)
        return n

    for s in (slow_async, slow_sync):
        r = await Workflow(f"t_{s.id}", input=int).then(s).arun(1)
        assert r.status == "failed" and isinstance(r.error, StepTimeout)
        assert r.error.step == s.id


async def test_a_failed_run_read_back_keeps_its_error_type(tmp_path: Any) -> None:
    """``get_run`` rebuilds the stored error as the class the run failed with (it used to
    make every error a StepFailed with the real one nested in its details)."""
    from vivace.storage import SQLiteStorage

    @step(timeout=0.05)
    async def too_slow(n: int) -> int:
        await asyncio.sleep(5)
        return n

    @step
    def broken(n: int) -> int:
        raise ValueError("步骤 failed 💥")

    storage = SQLiteStorage(str(tmp_path / "w.db"))
    try:
        for s, kind in ((too_slow, StepTimeout), (broken, StepFailed)):
            wf = Workflow(f"e_{s.id}", input=int, storage=storage).then(s)
            r = await wf.arun(1)
            got = await wf.get_run(r.run_id)
            assert got is not None and type(got.error) is kind is type(r.error)
            assert got.error.to_dict() == r.error.to_dict()  # type: ignore[union-attr]
            assert got.error.step == s.id  # type: ignore[union-attr]
    finally:
        await storage.close()


async def test_two_workflows_with_one_run_id_stay_apart(tmp_path: Any) -> None:
    """Runs are found per workflow: cancelling or reading workflow B's run ``order-42`` never
    reaches workflow A's run of the same id kept in this process (it cancelled A's and
    reported B's as cancelled while B's went on)."""
    from vivace.storage import SQLiteStorage

    @step(resume=str)
    async def wait_human(x: str, ctx: StepContext) -> str:
        return f"{x}:{await ctx.suspend({'q': x})}"

    storage = SQLiteStorage(str(tmp_path / "w.db"))
    try:
        a = Workflow("wf_a", input=str).then(wait_human)  # no storage: kept in this process
        b = Workflow("wf_b", input=str, storage=storage).then(wait_human)
        c = Workflow("wf_c", input=str).then(wait_human)
        for wf, x in ((a, "A"), (b, "B"), (c, "C")):
            assert (await wf.arun(x, run_id="order-42")).status == "suspended"
        got = await b.get_run("order-42")
        assert got is not None and got.workflow == "wf_b" and got.status == "suspended"
        assert await b.acancel("order-42") == "cancelled"
        got = await b.get_run("order-42")
        assert got is not None and got.status == "cancelled"
        # A's and C's runs are untouched and still resumable
        for wf, x in ((a, "A"), (c, "C")):
            done = await wf.aresume("order-42", step="wait_human", data="yes")
            assert done.status == "completed" and done.output == f"{x}:yes"
        assert await a.get_run("order-42") is None  # ended without storage: not kept
    finally:
        await storage.close()


async def test_bail_and_cancel_from_a_step():
    after = []

    @step
    def maybe_bail(n: int, ctx: StepContext) -> int:
        if n > 1:
            ctx.bail(n * 100)
        return n

    @step
    def record(n: int) -> int:
        after.append(n)
        return n

    wf = Workflow("b", input=int).then(maybe_bail).then(record)
    r = await wf.arun(5)
    assert r.status == "bailed" and r.output == 500 and after == []
    assert r.steps["maybe_bail"].status == "completed"
    assert (await wf.arun(1)).status == "completed" and after == [1]

    @step
    def stop(n: int, ctx: StepContext) -> int:
        ctx.cancel("not today")

    r = await Workflow("c", input=int).then(stop).then(record).arun(1)
    assert r.status == "cancelled" and r.error.message == "not today"


async def test_cancel_a_running_run_from_outside():
    started = asyncio.Event()

    @step
    async def forever(n: int) -> int:
        started.set()
        await asyncio.sleep(60)
        return n

    wf = Workflow("forever", input=int).then(forever)
    task = asyncio.ensure_future(wf.arun(1, run_id="to-cancel"))
    await started.wait()
    assert await wf.acancel("to-cancel") == "running"
    r = await task
    assert r.status == "cancelled"
    assert await wf.acancel("to-cancel") is None


async def test_sleep_and_sleep_until():
    wf = Workflow("s", input=int).sleep(0.02).then(inc)
    t0 = time.perf_counter()
    r = await wf.arun(1)
    assert r.output == 2 and time.perf_counter() - t0 >= 0.02
    assert r.steps["sleep"].kind == "sleep"
    when = datetime.now(UTC) + timedelta(milliseconds=20)
    r = await Workflow("su", input=int).sleep_until(when).then(inc).arun(1)
    assert r.output == 2 and datetime.now(UTC) >= when


async def test_wait_for_event_and_send_event():
    class Approval(BaseModel):
        by: str

    wf = Workflow("ev", input=int).then(inc).wait_for_event("approved", type=Approval)
    r = await wf.arun(1)
    assert r.status == "waiting"
    assert r.suspended[0].kind == "event" and r.suspended[0].event == "approved"
    with pytest.raises(StepNotSuspended):
        await wf.send_event(r.run_id, "other", {})
    with pytest.raises(ResumeDataInvalid):  # checked before anything is recorded
        await wf.send_event(r.run_id, "approved", {"who": "ann"})
    done = await wf.send_event(r.run_id, "approved", {"by": "ann"})
    assert done.status == "completed" and done.output == Approval(by="ann")


async def test_unexpected_errors_are_wrapped_with_the_step_path():
    @step
    def bad(n: int) -> int:
        return 1 // 0

    r = await Workflow("z", input=int).then(bad).arun(1)
    assert r.error.step == "bad"
    assert r.error.details["error"]["code"] == UnexpectedError.code


async def test_stream_of_a_suspend_and_resume_continues_the_sequence():
    @step(resume=str)
    async def ask(n: int, ctx: StepContext) -> str:
        answer = await ctx.suspend({"q": n})
        return f"{n}:{answer}"

    wf = Workflow("ask", input=int).then(inc).then(ask)
    s1 = wf.astream(1)
    first = [e async for e in s1]
    assert first[-1].type == "workflow_suspended"
    assert first[-1].suspended == [
        {"path": "ask", "kind": "suspend", "event": None, "payload": {"q": 2}}
    ]
    assert [e.type for e in first].count("step_suspended") == 1
    s2 = wf.aresume_stream(s1.result.run_id, step="ask", data="yes")
    second = [e async for e in s2]
    assert second[0].type == "workflow_resumed" and second[0].data == "yes"
    assert second[0].seq == first[-1].seq + 1
    assert [e.seq for e in second] == list(range(second[0].seq, second[0].seq + len(second)))
    assert s2.result.output == "2:yes"
    assert "step_started" in [e.type for e in second]
    # the replayed step did not run again: no event for it
    assert all(getattr(e, "path", None) != "inc" for e in second)


async def test_options_of_a_copy_apply_even_after_the_original_was_built():
    calls = {"n": 0}

    @step
    def flaky(n: int) -> int:
        calls["n"] += 1
        if calls["n"] % 2:
            raise ValueError("odd call")
        return n

    plain = Workflow("plain", input=int).then(flaky)  # built: the step is read as plain
    assert (await plain.arun(1)).status == "failed"
    retrying = Workflow("retrying", input=int).then(flaky.with_options(retries=1, backoff=0))
    calls["n"] = 0  # the first attempt fails, the retry passes
    r = await retrying.arun(7)
    assert r.status == "completed" and r.output == 7 and r.steps["flaky"].attempts == 2
