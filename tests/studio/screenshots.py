"""Refresh the Studio screenshots in docs/screenshots/ by running the browser tests:

python -m tests.studio.screenshots
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    out = REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIVACE_STUDIO_SCREENSHOTS": str(out)}
    return subprocess.call(
        [sys.executable, "-m", "pytest", "-q", str(REPO / "tests" / "studio")], cwd=REPO, env=env
    )


if __name__ == "__main__":
    raise SystemExit(main())
