"""Generated session histories give the same outcome on every backend: seeded sequences of
runs over a few sessions and users, whose tools set, delete, increment, append and merge
session state (Chinese, emoji, control characters, nested values, large and negative
numbers, values JSON cannot hold), some failing, some passing ``session_state`` or
``message_history``, with random ``history_runs`` - on SQLite and PostgreSQL the results,
the history each model request saw and the stored sessions must equal the in-memory
backend's."""

from __future__ import annotations

import random
from typing import Any

from vivace import Agent, RunContext
from vivace.storage import InMemoryStorage
from vivace.testing import ScriptedModel, call

_KEYS = ["计数", "items", "profile", "note 🚀", "k\x07"]
_VALUES: list[Any] = [
    "绿茶 🍵",
    "tab\tnew\nline",
    "esc \x1b[31m",
    0,
    -17,
    2**53 + 1,
    10**20,
    3.25,
    -0.5,
    True,
    None,
    [],
    [1, "二", {"deep": ["😀"]}],
    {"a": {"b": {"c": "ç"}}},
    "",
    "nul \x00 byte",
]
_ODD = [float("nan"), float("inf"), {1, 2}, b"\x00\xff", ("tuple", 1)]


def mutate(ctx: RunContext[Any], ops: list[list[Any]]) -> str:
    """Apply state operations: [op, key, value]."""
    st = ctx.session_state
    for op, key, value in ops:
        if op == "set":
            st[key] = value
        elif op == "del":
            st.pop(key, None)
        elif op == "inc":
            st.increment(key, value)
        elif op == "append":
            st.append(key, value)
        elif op == "merge":
            st.merge(key, value)
        elif op == "odd":  # a value JSON cannot hold (or holds differently)
            st[key] = _ODD[value]
        elif op == "fail":
            raise RuntimeError(f"refused {key} ⛔")
    return f"{len(st)} keys"


def _plan(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    runs = []
    for n in range(rnd.randint(3, 7)):
        ops = []
        for _ in range(rnd.randint(1, 4)):
            op = rnd.choice(["set", "set", "del", "inc", "append", "merge", "fail", "odd"])
            key = rnd.choice(_KEYS)
            value: Any = rnd.choice(_VALUES)
            if op == "inc":
                value = rnd.choice([1, -2, 0.5])
            elif op == "odd":
                value = rnd.randrange(len(_ODD))
            elif op == "merge":
                value = {rnd.choice(["x", "名"]): rnd.choice(_VALUES)}
            ops.append([op, key, value])
        session = rnd.choice(["s-1", "会话-2", "s 3 🚀"])
        runs.append(
            {
                "session_id": session,
                "user_id": {"s-1": "u1", "会话-2": "用户", "s 3 🚀": None}[session],
                "ops": ops,
                "id": f"c{n}",
                "state": rnd.choice([None, None, {"given": n, "计数": n}]),
                "history": rnd.random() < 0.15,
                "history_runs": rnd.randint(1, 3),
            }
        )
    return runs


async def _play(storage: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    from vivace.messages import Message

    out: list[Any] = []
    for r in runs:
        model = ScriptedModel([call("mutate", {"ops": r["ops"]}, id=r["id"]), "done ✅"])
        agent = Agent(
            model=model,
            tools=[mutate],
            storage=storage,
            tool_retries=0,
            history_runs=r["history_runs"],
        )
        result = await agent.arun(
            f"run {r['id']}",
            session_id=r["session_id"],
            user_id=r["user_id"],
            session_state=r["state"],
            message_history=[Message.user("earlier 以前")] if r["history"] else None,
        )
        error = result.error.to_dict() if result.error else None
        seen = [[m.to_dict() for m in req.messages] for req in model.requests]
        output = result.output if result.status == "completed" else None
        out.append([result.status, error, output, dict(result.session_state), seen])
    sessions = {}
    for sid, uid in (("s-1", "u1"), ("会话-2", "用户"), ("s 3 🚀", None)):
        rec = await storage.sessions.get_session(sid, user_id=uid)
        if rec is not None:
            stored = [
                [run.status, [m.to_dict() for m in run.messages], run.output, run.error]
                for run in await storage.sessions.list_runs(sid)
            ]
            sessions[sid] = [rec.state, rec.user_id, stored]
    return {"runs": out, "sessions": sessions}


async def test_generated_session_histories_match_the_in_memory_backend(storage_factory) -> None:
    if storage_factory.kind == "memory":
        return  # the reference itself
    for seed in range(20):
        runs = _plan(seed)
        expected = await _play(InMemoryStorage(), runs)
        st = storage_factory()
        await st.setup()
        got = await _play(st, runs)
        assert got == expected, f"seed {seed}"
        for sid in got["sessions"]:  # a fresh start for the next seed
            await st.sessions.delete_session(sid)
