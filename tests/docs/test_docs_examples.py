"""Every ```python block of docs/**/*.md and README.md runs (the convention is in
tests/docs/harness.py). One test per block, named ``file:line``; the blocks of a file run in
order in one namespace, in a temporary working directory, offline: fake OpenAI and Anthropic
servers (vivace.testing.fake_providers) stand behind OPENAI_BASE_URL/ANTHROPIC_BASE_URL, so
``Agent(model="openai/gpt-4o-mini")`` really runs. Skipped blocks report their reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Block, DocFile, blocks_of

REPO = Path(__file__).resolve().parents[2]
FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCKS: list[tuple[int, Block]] = [
    (i, b)
    for f in FILES
    if f.exists()
    for i, b in enumerate(blocks_of(f, f.relative_to(REPO).as_posix()))
]
FAKE_ANSWER = "(an answer from the fake model server)"


@pytest.fixture(scope="module")
def offline_providers() -> Iterator[None]:
    from vivace.models.router import clear_model_cache
    from vivace.testing.fake_providers import FakeAnthropic, FakeOpenAIChat, Turn

    openai, anthropic = FakeOpenAIChat().start(), FakeAnthropic().start()
    openai.default = anthropic.default = Turn(text=FAKE_ANSWER)
    env = {
        "OPENAI_BASE_URL": openai.base_url,
        "OPENAI_API_KEY": "sk-docs-fake",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-docs-fake",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    clear_model_cache()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        clear_model_cache()
        openai.stop()
        anthropic.stop()


@pytest.fixture(scope="module")
def doc_files(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, DocFile]:
    out: dict[Path, DocFile] = {}
    for f in FILES:
        if f.exists():
            blocks = blocks_of(f, f.relative_to(REPO).as_posix())
            out[f] = DocFile(blocks, tmp_path_factory.mktemp(f.stem, numbered=True))
    return out


@pytest.mark.parametrize(("index", "block"), BLOCKS, ids=[b.where for _, b in BLOCKS])
def test_docs_block(
    index: int, block: Block, offline_providers: None, doc_files: dict[Path, DocFile]
) -> None:
    failure = None
    try:
        doc_files[block.path].run_through(index)
    except AssertionError as exc:
        failure = str(exc)
    if failure is not None:  # the message names file and line; no harness traceback
        pytest.fail(failure, pytrace=False)
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")


def test_the_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 20
