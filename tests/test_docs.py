"""The README stays a few screens, and every relative link in it and in docs/ leads somewhere:
an existing file, and where it names a section, a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from project import ROOT

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings (lower case, punctuation dropped, - for space)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link}"
        if anchor:
            assert anchor in anchors(target), f"{page.name}: {link}"


def test_the_links_check_sees_a_broken_link_and_a_missing_section(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#title) [c](#nowhere) [d](https://x.org)\n")
    assert relative_links(page) == ["missing.md", "#title", "#nowhere"]
    assert anchors(page) == {"title"}


def test_the_readme_is_a_few_screens_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15_000
    linked = {Path(link.partition("#")[0]).name for link in relative_links(ROOT / "README.md")}
    pages = {page.name for page in (ROOT / "docs").glob("*.md")} - {"profile.md"}
    assert len(pages) >= 4 and pages <= linked, pages - linked


COMMANDS = ("detox.compare", "detox.sweep", "detox.review", "detox.share",
            "detox.bench.versus_trl", "detox.bench.profile_loop", "detox.bench.candidates",
            "detox.bench.scale")


@pytest.mark.slow  # a fresh interpreter per command: about a minute in all
@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_s_help_says_what_it_is_and_what_it_writes(module):
    import importlib
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    own = importlib.util.find_spec(module).loader.get_source(module).split('"""')[1]
    first = " ".join(own.split("\n\n")[0].split())  # its own docstring's first paragraph
    assert first[:60] in " ".join(result.stdout.split())
    assert re.search(r"\b(writes?|overwrites?|prints?)\b", result.stdout, re.IGNORECASE)


def test_the_readme_s_results_tables_are_what_the_committed_outputs_render(monkeypatch):
    from detox.readme import BLOCK, rendered

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    assert {block["name"] for block in BLOCK.finditer(text)} == {
        "offline-default", "smollm2-methods", "offline-online-dpo"}
    assert rendered(text) == text, "run `python -m detox.readme` and commit README.md"


def test_a_number_edited_by_hand_in_a_results_table_is_caught(monkeypatch):
    from detox.readme import BLOCK, rendered

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    block = next(BLOCK.finditer(text))
    body = block["body"]
    number = re.search(r"\d\.\d{3}", body)
    edited = body[:number.start()] + ("9" if number[0][0] != "9" else "8") \
        + body[number.start() + 1:]
    tampered = text[:block.start("body")] + edited + text[block.end("body"):]
    assert rendered(tampered) == text != tampered
