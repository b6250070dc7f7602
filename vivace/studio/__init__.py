"""The Studio's web UI: plain ES modules and CSS in ``static/`` (no build step, no CDN: it
works offline), served by the server's ``studio`` route module at ``/studio``::

    app = VivaceApp([agent], storage="sqlite:///.vivace/vivace.db", studio=True)

``vivace dev`` and ``vivace serve --studio`` turn it on. See ``docs/studio.md``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC"]

STATIC = Path(__file__).with_name("static")
"""The folder of the Studio's page and assets."""
