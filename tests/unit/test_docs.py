"""The docs against the code: every relative link resolves, and the README names every command."""

from __future__ import annotations

import re
from pathlib import Path

from triton_rerank.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def broken_links(markdown: Path) -> list[str]:
    targets = LINK.findall(markdown.read_text())
    return [
        t
        for t in targets
        if not t.startswith(("http://", "https://", "mailto:")) and not (markdown.parent / t).exists()
    ]


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(pages) > 20
    assert {str(page.relative_to(ROOT)): broken for page in pages if (broken := broken_links(page))} == {}


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "here.md").write_text("")
    page.write_text("[ok](here.md) [web](https://example.com) [gone](docs/here.md#part)")
    assert broken_links(page) == ["docs/here.md"]


def test_the_readme_lists_every_command_of_the_command_line():
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "**One command line**" in line)
    assert re.search(r"`triton-rerank ([a-z|-]+)`", line).group(1).split("|") == list(COMMANDS)
