"""``vivace models [PROVIDER] [--search TEXT] [--json] [--refresh [--url URL]]``.

* no argument: every provider (registry and model catalog), its protocol, how many models
  the catalog lists, the key variable and whether it is set;
* ``PROVIDER``: that provider's models with context window, output limit, input modalities,
  capabilities and prices (USD per million tokens);
* ``--search TEXT``: models whose id or name contains TEXT (across providers, or within
  PROVIDER);
* ``--json``: the same as JSON;
* ``--refresh``: download models.dev's catalog into the user cache (``--url`` for another
  address); offline, it says so and keeps the catalog in use.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "models"]


def add_parser(sub: Any) -> None:
    m = sub.add_parser(
        "models",
        help="list model providers and models (limits, prices), refresh the catalog",
        description="List model providers, their models with limits and prices, or refresh "
        "the model catalog from models.dev.",
    )
    m.add_argument("provider", nargs="?", default=None, help="list this provider's models")
    m.add_argument("--search", metavar="TEXT", default=None, help="models whose id/name has TEXT")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.add_argument(
        "--refresh",
        action="store_true",
        help="download the current catalog from models.dev into the user cache",
    )
    m.add_argument("--url", default=None, help="catalog address for --refresh")


def models(args: argparse.Namespace) -> int:
    if args.refresh:
        return _refresh(args)
    from ..errors import ModelNotFoundError
    from ..models.catalog import load_catalog

    cat = load_catalog()
    if args.provider is None and args.search is None:
        return _providers(args, cat)
    catalog_ids: list[str] | None = None
    if args.provider is not None:
        from ..models.registry import get_provider

        try:
            info = get_provider(args.provider)
        except ModelNotFoundError as exc:
            print(f"vivace models: {exc.message}", file=sys.stderr)
            return 2
        catalog_ids = [c for c in info.catalog_ids if c in cat.providers][:1]
        if not catalog_ids and args.search is None:
            if args.json:
                print("[]")
            else:
                print(
                    f"the model catalog lists no models for {info.id!r}; any model name works: "
                    f'Agent(model="{info.id}/<model>")'
                )
            return 0
    infos = (
        cat.search(args.search, catalog_ids)
        if args.search is not None
        else cat.models(catalog_ids[0])  # type: ignore[index]
    )
    spec_prefix = args.provider if args.provider is not None else None
    if args.json:
        out = [{"model": f"{spec_prefix or i.provider}/{i.id}", **i.to_dict()} for i in infos]
        print(json.dumps(out, indent=1))
        return 0
    if not infos:
        print(f"no model matches {args.search!r}" if args.search else "no models")
        return 0
    header = ["MODEL", "CONTEXT", "MAX_OUT", "INPUT", "CAPS", "$IN/M", "$OUT/M", "$CACHED/M"]
    rows = [
        [
            f"{spec_prefix or i.provider}/{i.id}",
            _tokens(i.context),
            _tokens(i.max_output),
            ",".join(m for m in i.input if m != "text") or "text",
            _caps(i),
            _price(i.price_input),
            _price(i.price_output),
            _price(i.price_cached),
        ]
        for i in infos
    ]
    _table(header, rows, {1, 2, 5, 6, 7})
    print(
        f"\n{len(rows)} models. CAPS: t tools, s structured output (JSON schema), r reasoning, "
        "d deprecated, o dropped from the current models.dev list. Prices: USD per million tokens."
    )
    return 0


def _providers(args: argparse.Namespace, cat: Any) -> int:
    from ..models.router import list_providers

    rows = list_providers()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
        return 0
    header = ["ID", "PROTOCOL", "MODELS", "KEY_ENV", "KEY_SET"]
    cells = [
        [
            r.id,
            r.protocol if r.chat else f"{r.protocol} (embeddings only)",
            str(r.models) if r.models else "",
            r.key_env or "",
            "yes" if r.key_set else "-",
        ]
        for r in rows
    ]
    _table(header, cells, {2})
    ready = [r.id for r in rows if r.key_set]
    from ..models.catalog import BUNDLED_PATH

    where = "bundled" if cat.path == BUNDLED_PATH else f"user copy {cat.path}"
    print(
        f"\n{len(rows)} providers; {cat.model_count} models in the catalog ({where}: "
        f"{cat.source}, {cat.source_date[:10]})"
    )
    print(f"key set for: {', '.join(ready) or 'none'}")
    print('use one as Agent(model="provider/model-name"); `vivace models PROVIDER` lists models')
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from ..errors import VivaceError
    from ..models.catalog import DEFAULT_URL, load_catalog, refresh_catalog, user_catalog_path
    from ..models.registry import provider_ids

    url = args.url or DEFAULT_URL
    try:
        cat = refresh_catalog(url, known=provider_ids(include_aliases=True, catalog=False))
    except VivaceError as exc:
        try:
            current = load_catalog()
            keep = f"; still using {current.source} of {current.source_date[:10]}"
        except (OSError, ValueError):
            keep = ""
        print(f"vivace models --refresh: {exc.message}{keep}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(user_catalog_path()),
                    "providers": len(cat.providers),
                    "models": cat.model_count,
                    "source": cat.source,
                    "source_date": cat.source_date,
                    "skipped": cat.skipped,
                }
            )
        )
    else:
        print(
            f"saved {len(cat.providers)} providers and {cat.model_count} models from {url} "
            f"to {user_catalog_path()}"
        )
        if cat.skipped:
            print(f"skipped (no adapter): {', '.join(sorted(cat.skipped))}")
    return 0


def _tokens(n: int | None) -> str:
    if not n:
        return "-"
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 100_000:
        return f"{n / 1000:.0f}K"
    return str(n)


def _price(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2f}" if p >= 0.1 or p == 0 else f"{p:.3g}"


def _caps(i: Any) -> str:
    return (
        ("t" if i.tool_call else "")
        + ("s" if i.structured_output else "")
        + ("r" if i.reasoning else "")
        + ("d" if i.deprecated else "")
        + ("o" if i.dropped else "")
    )


def _table(header: list[str], rows: list[list[str]], right: frozenset[int] | set[int]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), *(line(r) for r in rows)]
    sys.stdout.write("\n".join(out) + "\n")
