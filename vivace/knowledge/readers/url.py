"""URLs fetched with ``httpx``: a time limit for the whole fetch, a size limit checked while
the body streams in, and errors that name the URL."""

from __future__ import annotations

from typing import Any

from ..documents import Document
from ..errors import ContentTooLarge, FetchError, IngestError, UnsupportedContent

__all__ = ["fetch_url"]


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float = 30.0,
    metadata: dict[str, Any] | None = None,
    client: Any = None,
    headers: dict[str, str] | None = None,
) -> list[Document]:
    """Documents of the page or file at ``url`` (redirects followed)."""
    import asyncio

    import httpx

    from . import SUFFIXES, kind_for, read_bytes

    if not url.startswith(("http://", "https://")):
        raise FetchError(f"{url}: only http and https URLs can be fetched", source=url)

    async def get() -> tuple[bytes, str | None, str]:
        c = client or httpx.AsyncClient(follow_redirects=True)
        try:
            async with c.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 400:
                    raise FetchError(
                        f"{url}: HTTP {resp.status_code} {resp.reason_phrase}",
                        source=url,
                        status=resp.status_code,
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ContentTooLarge(
                        f"{url}: {declared} bytes is more than the limit of {max_bytes} bytes",
                        source=url,
                        max_bytes=max_bytes,
                    )
                buf = bytearray()
                async for part in resp.aiter_bytes():
                    buf += part
                    if len(buf) > max_bytes:
                        raise ContentTooLarge(
                            f"{url}: more than the limit of {max_bytes} bytes",
                            source=url,
                            max_bytes=max_bytes,
                        )
                return bytes(buf), resp.headers.get("content-type"), str(resp.url)
        finally:
            if client is None:
                await c.aclose()

    try:
        data, ctype, final = await asyncio.wait_for(get(), timeout)
    except IngestError:
        raise
    except TimeoutError:
        raise FetchError(f"{url}: no complete answer within {timeout}s", source=url) from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}", source=url) from None
    path = final.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    suffix_known = "." in name and ("." + name.rsplit(".", 1)[-1].lower()) in SUFFIXES
    try:
        kind = kind_for(url, name if suffix_known else None, ctype)
    except UnsupportedContent:
        raise UnsupportedContent(
            f"{url}: unsupported content type {ctype or '(none)'!r}", source=url
        ) from None
    meta = {"url": url, **(metadata or {})}
    return read_bytes(data, url, kind=kind, metadata=meta)
