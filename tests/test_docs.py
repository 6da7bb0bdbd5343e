"""The README and docs/ stay short and their links resolve: files exist, anchors are headings."""

import re

from tests.conftest import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings inside code
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def links(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_every_link_in_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in links(page):
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_readme_is_short_and_links_every_docs_page():
    readme = PROJECT_ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 200
    linked = {target.partition("#")[0] for target in links(readme)}
    pages = {f"docs/{page.name}" for page in PAGES[1:]}
    assert pages <= linked, pages - linked


def test_the_slug_rule_is_githubs():
    assert slug("More than one device: `runtime`") == "more-than-one-device-runtime"
    assert slug("Two classes or K: one `Task`") == "two-classes-or-k-one-task"
