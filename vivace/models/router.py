"""Resolve a model spec (``"provider/model"``, a :class:`Model`, or a fallback list) to a Model."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ModelNotFoundError
from .base import Model

__all__ = ["ModelSpec", "resolve_model"]

ModelSpec = str | Model | Sequence[str | Model]


def resolve_model(spec: ModelSpec | None) -> Model:
    """Return the :class:`Model` for ``spec``. Placeholder until the router lands."""
    if isinstance(spec, Model):
        return spec
    if spec is None:
        raise ModelNotFoundError("no model given: pass model= to the Agent or to the run")
    raise ModelNotFoundError(f"unknown model {spec!r}")
