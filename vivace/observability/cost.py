"""Cost in USD of a model response.

The models layer's catalog prices each response (``Usage.cost``); prices you give
:func:`set_prices` (per million tokens) fill in models the catalog does not know (your own
deployments, test models) or override it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["cost_usd", "set_prices"]

_PRICES: dict[str, tuple[float, float, float]] = {}


def set_prices(prices: Mapping[str, Mapping[str, float]]) -> None:
    """Prices per million tokens by ``"provider/model"`` (or ``"model"``):
    ``{"openai/gpt-4o": {"input": 2.5, "output": 10, "cached": 1.25}}``."""
    _PRICES.clear()
    for key, p in prices.items():
        inp = float(p.get("input", 0.0))
        _PRICES[key] = (inp, float(p.get("output", 0.0)), float(p.get("cached", inp)))


def cost_usd(provider: str | None, model: str | None, usage: Any) -> float | None:
    """The cost of ``usage`` for ``provider/model``, or None when no price is known."""
    if _PRICES and model:
        price = _PRICES.get(f"{provider}/{model}") or _PRICES.get(model)
        if price is not None:
            inp, out, cached = price
            cached_n = usage.cached_tokens
            return (
                (usage.input_tokens - cached_n) * inp
                + cached_n * cached
                + usage.output_tokens * out
            ) / 1e6
    return getattr(usage, "cost", None)
