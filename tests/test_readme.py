"""The README cites only what the repository holds: every file or folder it names exists
(but what the benchmarks write), the one place outside it is the optional data folder
beside the clone, and the sections it links to exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: top-level folders of the repository whose paths the README names
FOLDERS = ("cinestrain", "tests", "bench", "systemd", "docs", "viewer")
#: written by the benchmarks, not held by the repository
GENERATED = "bench/out"
#: the one folder outside the repository the README names: optional data beside the clone
OUTSIDE = "../shared/data/sunnybrook"


def cited() -> set[str]:
    """Paths in inline code and link targets that name a repository file or folder, a
    Markdown file, or a place outside the repository."""
    tokens = set(re.findall(r"`([^`\s]+)`", README))
    tokens |= set(re.findall(r"\]\(([^)#\s]+)\)", README))
    pattern = rf"^(?:{'|'.join(FOLDERS)})/|\.md$|^\.\./|^LICENSE$"
    return {t.rstrip("/.,:;") for t in tokens if re.search(pattern, t) and "://" not in t}


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_cited_path_is_in_the_repository():
    missing = [p for p in sorted(cited())
               if not p.startswith(("../", GENERATED)) and not (ROOT / p).exists()]
    assert missing == []


def test_nothing_outside_the_repository_but_the_optional_data_folder():
    outside = {p for p in cited() if p.startswith("../")}
    assert outside <= {OUTSIDE}
    if outside:
        assert "an optional\nfolder beside the clone, not part of the repository" in README
    for name in ("DESIGN.md", "STYLE.md", "shared/seed"):
        assert name not in README, name


def test_links_to_sections_and_documents_resolve():
    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", README, flags=re.MULTILINE)}
    for target in re.findall(r"\]\(#([^)]+)\)", README):
        assert target in anchors, target
    assert "(docs/conformance.md)" in README and (ROOT / "docs" / "conformance.md").is_file()
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
