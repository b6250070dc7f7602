"""Testing helpers: deterministic models for your own tests (no network, no keys).

.. code-block:: python

    from vivace import Agent
    from vivace.testing import ScriptedModel, call

    model = ScriptedModel([call("get_weather", {"city": "Paris"}), "Sunny in Paris."])
    agent = Agent(model=model, tools=[get_weather])
    assert agent.run("Weather in Paris?").output == "Sunny in Paris."

Fake provider HTTP servers (real wire protocols on 127.0.0.1) live in
:mod:`vivace.testing.fake_providers`.
"""

from .models import EchoModel, FunctionModel, ScriptedModel, Stream, call, reasoning, test_model

__all__ = [
    "EchoModel",
    "FunctionModel",
    "ScriptedModel",
    "Stream",
    "call",
    "reasoning",
    "test_model",
]
