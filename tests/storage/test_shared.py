"""One storage object per URL per process, shared by agents and the server."""

from __future__ import annotations

from pathlib import Path

from vivace import Agent
from vivace.server import VivaceApp
from vivace.storage import InMemoryStorage, shared_storage
from vivace.testing import EchoModel


def test_the_same_url_gives_the_same_storage_to_agents_and_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    agent = Agent(EchoModel(), storage=url, name="a")
    agent.run("hi", session_id="s")
    app = VivaceApp([Agent(EchoModel(), name="b")], storage=url)
    assert app.storage is shared_storage(url)
    # a second agent given the URL reads what the first wrote through the same object
    other = Agent(EchoModel(), storage=url, name="a")
    assert other.run("again", session_id="s").session_id == "s"
    assert shared_storage(url) is shared_storage(url)


def test_a_storage_object_is_returned_as_is() -> None:
    st = InMemoryStorage()
    assert shared_storage(st) is st
