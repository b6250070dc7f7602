"""Reading content: every supported format through a knowledge base, and a clear typed error
per bad item while the rest of the batch is still ingested."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from vivace.knowledge import (
    ContentTooLarge,
    Document,
    EmptyContent,
    FetchError,
    IngestError,
    KnowledgeBase,
    UnreadableContent,
    UnsupportedContent,
)
from vivace.knowledge.readers import read_bytes


def _pdf(text_pages: list[str], password: str | None = None) -> bytes:
    """A real PDF with a text layer (built by hand: pypdf cannot write text)."""
    objs = []
    kids = []
    n_pages = len(text_pages)
    font_id = 3 + 2 * n_pages
    for i, text in enumerate(text_pages):
        page_id, content_id = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page_id} 0 R")
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            (
                page_id,
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R /Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode(),
            )
        )
        objs.append(
            (content_id, b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        )
    objs.append((font_id, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"))
    objs = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {n_pages} >>".encode()),
        *objs,
    ]
    objs.sort()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = {}
    for num, body in objs:
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for num, _ in objs:
        out.write(b"%010d 00000 n \n" % offsets[num])
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    )
    data = out.getvalue()
    if password is None:
        return data
    import pypdf

    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    w.encrypt(password, algorithm="AES-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def _docx(paragraphs: list[tuple[str, str | None]]) -> bytes:
    import docx

    d = docx.Document()
    for text, style in paragraphs:
        if style and style.startswith("Heading"):
            d.add_heading(text, level=int(style[-1]))
        else:
            d.add_paragraph(text)
    t = d.add_table(rows=1, cols=2)
    t.rows[0].cells[0].text = "cell a"
    t.rows[0].cells[1].text = "cell b"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.fixture
def kb(embedder) -> KnowledgeBase:
    return KnowledgeBase("readers", store="memory", embedder=embedder)


async def test_every_format_is_read_and_searchable(kb: KnowledgeBase, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Plain notes about the blue heron that nests by the lake.")
    (tmp_path / "guide.md").write_text("# Guide\n\n## Setup\n\nConfigure the flux capacitor first.")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Volcanoes</title><script>var x = 'ignored';</script></head>"
        "<body><nav>menu</nav><h1>Volcanoes</h1><p>Magma rises through the crust.</p></body></html>"
    )
    (tmp_path / "report.pdf").write_bytes(
        _pdf(["Quarterly revenue grew nine percent.", "Page two covers hiring."])
    )
    (tmp_path / "memo.docx").write_bytes(
        _docx([("Memo", "Heading1"), ("The cafeteria closes at noon on Fridays.", None)])
    )
    (tmp_path / "people.csv").write_text(
        "id,name,bio,age\n7,Ada,Wrote the first program,36\n8,Alan,Broke the Enigma code,41\n"
    )
    (tmp_path / "items.json").write_text(
        json.dumps([{"sku": "x1", "text": "Red running shoes", "price": 80}])
    )
    (tmp_path / "events.jsonl").write_text(
        '{"text": "Launch party on Mars"}\n{"text": "Board meeting"}\n'
    )
    report = await kb.aadd(tmp_path, id_field="id")
    assert not report.failed, [f.error for f in report.failed]
    by_source = {i.source: i for i in report.items}
    assert set(by_source) == {
        f"{tmp_path.as_posix()}/{n}"
        for n in ("notes.txt", "guide.md", "page.html", "report.pdf", "memo.docx", "items.json#0")
    } | {f"{tmp_path.as_posix()}/people.csv#7", f"{tmp_path.as_posix()}/people.csv#8"} | {
        f"{tmp_path.as_posix()}/events.jsonl#0",
        f"{tmp_path.as_posix()}/events.jsonl#1",
    }

    async def top(q: str, **kw):
        [hit] = await kb.asearch(q, top_k=1, **kw)
        return hit

    h = await top("what does the flux capacitor need")
    assert h.source.endswith("guide.md") and h.metadata["headings"] == ["Guide", "Setup"]
    h = await top("molten rock volcano")
    assert h.source.endswith("page.html") and h.metadata["title"] == "Volcanoes"
    assert "ignored" not in h.text and "menu" not in h.text
    h = await top("how did sales change this quarter")
    assert h.source.endswith("report.pdf") and h.metadata["page"] == 1 and h.metadata["pages"] == 2
    h = await top("when does the canteen close")
    assert h.source.endswith("memo.docx")
    h = await top("who cracked enigma")
    assert (
        h.source.endswith("people.csv#8")
        and h.metadata["name"] == "Alan"
        and h.metadata["age"] == 41
    )
    h = await top("sneakers", filters={"price": {"lt": 100}})
    assert h.source.endswith("items.json#0")


async def test_bad_items_fail_alone_with_typed_errors(kb: KnowledgeBase, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Good content about sailing boats.")
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "secret.pdf").write_bytes(_pdf(["Top secret plans."], password="hunter2"))
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:  # a sparse 2 GiB file: refused by its size, never read
        f.truncate(2 * 1024**3)
    report = await kb.aadd(tmp_path / "*", tmp_path / "missing.txt")
    errors = {Path(i.source).name: i.error for i in report.failed}
    assert type(errors["empty.txt"]) is EmptyContent
    assert (
        type(errors["image.png"]) is UnsupportedContent and "'.png'" in errors["image.png"].message
    )
    assert type(errors["broken.pdf"]) is UnreadableContent
    assert (
        type(errors["secret.pdf"]) is UnreadableContent
        and "encrypted" in errors["secret.pdf"].message
    )
    assert type(errors["bad.json"]) is UnreadableContent
    assert type(errors["broken.docx"]) is UnreadableContent
    assert (
        type(errors["huge.txt"]) is ContentTooLarge
        and errors["huge.txt"].details["size"] == 2 * 1024**3
    )
    assert type(errors["missing.txt"]) is UnreadableContent
    for name, err in errors.items():
        assert isinstance(err, IngestError) and name in err.source and err.to_dict()["code"]
    assert [i.source for i in report.items if i.status == "added"] == [good.as_posix()]
    docs = await kb.adocuments()
    assert [d["source"] for d in docs] == [good.as_posix()]  # nothing of the bad ones was written


def test_read_bytes_dispatch_by_content_type() -> None:
    [d] = read_bytes(
        b"<p>Hello <b>world</b></p>", "upload-1", content_type="text/html; charset=utf-8"
    )
    assert d.text == "Hello world" and d.markdown
    with pytest.raises(UnsupportedContent):
        read_bytes(b"data", "upload-2", content_type="application/octet-stream")
    [d] = read_bytes("caf\u00e9".encode("cp1252"), "latin.txt", filename="latin.txt")
    assert d.text == "caf\u00e9"


async def test_raw_text_and_records(kb: KnowledgeBase) -> None:
    r = await kb.aadd_text(
        "Penguins live in the southern hemisphere.", source="note-1", metadata={"lang": "en"}
    )
    assert r.added == 1 and r.chunks == 1
    r = await kb.aadd_records(
        [
            {"id": "p1", "title": "Tea", "body": "Green tea has caffeine."},
            {"id": "p2", "title": "Milk", "body": "Milk has calcium."},
        ],
        source="products",
        text_fields=["title", "body"],
        id_field="id",
    )
    assert r.added == 2
    [hit] = await kb.asearch("which drink contains calcium", top_k=1)
    assert hit.source == "products#p2" and hit.text == "title: Milk\nbody: Milk has calcium."
    r = await kb.aadd(Document("empty", "  "), Document("ok", "fine text here"))
    assert [type(i.error) for i in r.failed] == [EmptyContent] and r.added == 1


async def test_urls_are_fetched_with_limits_and_named_errors(embedder, http_base: str) -> None:
    kb = KnowledgeBase("web", store="memory", embedder=embedder, max_bytes=1000, fetch_timeout=3.0)
    report = await kb.aadd(
        f"{http_base}/page",
        f"{http_base}/doc.md",
        f"{http_base}/missing",
        f"{http_base}/big",
        f"{http_base}/slow",
    )
    status = {i.source.rsplit("/", 1)[1]: i for i in report.items}
    assert status["page"].status == "added" and status["doc.md"].status == "added"
    for name, kind in (("missing", FetchError), ("big", ContentTooLarge), ("slow", FetchError)):
        err = status[name].error
        assert type(err) is kind, (name, err)
        assert f"{http_base}/{name}" in err.message and err.source == f"{http_base}/{name}"
    assert "404" in status["missing"].error.message
    [hit] = await kb.asearch("what causes tides", top_k=1)
    assert hit.source == f"{http_base}/page" and hit.metadata["url"] == f"{http_base}/page"
    [hit] = await kb.asearch("icy comet core", top_k=1)
    assert hit.metadata["headings"] == ["Comets"]
