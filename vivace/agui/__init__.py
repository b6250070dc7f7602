"""AG-UI: an agent's runs as AG-UI event streams (:mod:`vivace.agui.endpoint`). Needs
``pip install 'vivace[agui]'`` (the ``ag-ui-protocol`` package), imported on first use."""

from __future__ import annotations

__all__: list[str] = []
