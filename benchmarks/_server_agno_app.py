"""The Agno side of ``bench_server.py``: the equivalent one-tool agent behind AgentOS.

Served with ``uvicorn _server_agno_app:app --workers 1`` (run from ``benchmarks/``).
Environment: ``BENCH_FAKE_BASE_URL`` (the fake OpenAI server, ``http://127.0.0.1:<port>/v1``)
``BENCH_AGNO_DB`` (the SQLite file) and ``BENCH_AGNO_DB_KIND`` (``sync``: ``SqliteDb``, the
default in Agno's docs; ``async``: ``AsyncSqliteDb`` on aiosqlite). Telemetry is off so no request leaves the machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("AGNO_TELEMETRY", "false")

from agno.agent import Agent
from agno.db.sqlite import AsyncSqliteDb, SqliteDb
from agno.models.openai import OpenAIChat
from agno.os import AgentOS

INSTRUCTIONS = "You are a weather assistant. Use the get_weather tool to answer."


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The name of the city.
    """
    return f"Sunny in {city}."


db_file = os.environ["BENCH_AGNO_DB"]
if os.environ.get("BENCH_AGNO_DB_KIND", "sync") == "async":
    db: SqliteDb | AsyncSqliteDb = AsyncSqliteDb(db_file=db_file)
else:
    db = SqliteDb(db_file=db_file)
agent = Agent(
    id="weather",
    name="weather",
    model=OpenAIChat(id="gpt-4o-mini", base_url=os.environ["BENCH_FAKE_BASE_URL"], api_key="x"),
    instructions=INSTRUCTIONS,
    tools=[get_weather],
    db=db,
    telemetry=False,
)
agent_os = AgentOS(agents=[agent], db=db, telemetry=False)
app = agent_os.get_app()
