"""Fast checks of the book's frame: _toc.yml, _config.yml, the chapter template, citations, offline MathJax.

Nothing here builds the book (that is `make book`); every test reads files and runs in well under a second.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Every page of the finished book, in reading order (docnames, relative to the repository root).
BOOK_ORDER = [
    "book/intro",
    "notebooks/ramanujan_basics",
    "notebooks/weighted_metrics",
    "notebooks/itop_correlation",
    "notebooks/pags",
    "notebooks/pegs",
    "book/reproduce_gpu",
    "notebooks/custom_architecture",
    "book/api",
    "book/references",
    "book/building",
]
CHAPTER_NOTEBOOKS = [d for d in BOOK_ORDER if d.startswith("notebooks/")]
#: Bibliography keys the book promises (book/references.md lists them; chapters cite them).
REQUIRED_BIB_KEYS = {
    "hoang2023revisiting", "hoang2023dont", "lubotzky1988ramanujan", "marcus2015interlacing", "hoory2006expander",
    "liu2021itop", "mocanu2018set", "lee2019snip", "wang2020grasp", "tanaka2020synflow", "frankle2019lottery",
    "frankle2020linear", "you2020earlybird", "evci2020rigl",
}


def _load_ext():
    spec = importlib.util.spec_from_file_location("pags_book", ROOT / "book" / "_ext" / "pags_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                files += _toc_files(child)
    return files


def _source(docname: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{docname}{suffix}").is_file():
            return ROOT / f"{docname}{suffix}"
    return None


def _cell_text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of the ATX headings outside fenced code blocks."""
    out, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        m = re.match(r"^(`{3,}|~{3,})", stripped)
        if m:
            if fence is None:
                fence = m.group(1)[0] * len(m.group(1))
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is None:
            h = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
            if h:
                out.append((len(h.group(1)), h.group(2).strip()))
    return out


def template_errors(nb: dict) -> list[str]:
    """Where a chapter notebook departs from the template written down in book/building.md."""
    errors = []
    cells = nb.get("cells", [])
    if not cells or cells[0].get("cell_type") != "markdown":
        return ["the first cell must be a Markdown cell with the chapter title"]
    first = _cell_text(cells[0]).lstrip().splitlines()
    if not first or not re.match(r"^#\s+\S", first[0]):
        errors.append("the first line of the first cell must be the title as a level-1 heading ('# Title')")
    headings = [h for c in cells if c.get("cell_type") == "markdown" for h in _headings(_cell_text(c))]
    h1 = [t for level, t in headings if level == 1]
    if len(h1) != 1:
        errors.append(f"exactly one level-1 heading (the title) expected, found {len(h1)}: {h1}")
    h2 = [t for level, t in headings if level == 2]
    if h2[:2] != ["Overview", "Prerequisites"]:
        errors.append(f"the first level-2 headings must be 'Overview' then 'Prerequisites', found {h2[:2]}")
    if not h2 or h2[-1] != "Summary":
        errors.append(f"the last level-2 heading must be 'Summary', found {h2[-1:] or 'none'}")
    numbered = h2[2:-1]
    if not numbered:
        errors.append("at least one numbered section ('## 1. ...') expected between Prerequisites and Summary")
    for i, title in enumerate(numbered, start=1):
        if not re.match(rf"^{i}\.\s+\S", title):
            errors.append(f"level-2 heading {title!r} should be numbered '{i}. ...' (sections are numbered from 1)")
    code = [c for c in cells if c.get("cell_type") == "code"]
    if not code or "parameters" not in code[0].get("metadata", {}).get("tags", []):
        errors.append("the first code cell must be the papermill parameters cell (tag 'parameters')")
    if len(code) < 2:
        errors.append("the second code cell must print the resolved configuration")
    return errors


# ------------------------------------------------------------------------------------------------------------ toc


def test_toc_format_and_root():
    toc = _toc()
    assert toc["format"] == "jb-book"
    assert toc["root"] == "book/intro"


def test_toc_lists_only_existing_files():
    missing = [f for f in _toc_files(_toc()) + [_toc()["root"]] if _source(f) is None]
    assert not missing, f"_toc.yml lists files that do not exist (the build would fail): {missing}"


def test_toc_follows_the_book_order():
    files = [_toc()["root"]] + _toc_files(_toc())
    unknown = [f for f in files if f not in BOOK_ORDER]
    assert not unknown, f"pages not in the book's order (add them to BOOK_ORDER in this test): {unknown}"
    assert len(files) == len(set(files)), f"a page is listed twice: {files}"
    assert files == sorted(files, key=BOOK_ORDER.index), f"_toc.yml is out of order: {files}"


@pytest.mark.parametrize("docname", CHAPTER_NOTEBOOKS)
def test_chapter_follows_the_template(docname):
    path = ROOT / f"{docname}.ipynb"
    if not path.is_file():
        pytest.skip(f"{docname}.ipynb is not written yet")
    errors = template_errors(json.loads(path.read_text()))
    assert not errors, f"{docname}.ipynb departs from the template in book/building.md:\n  " + "\n  ".join(errors)


def test_template_check_accepts_the_template_and_rejects_departures():
    def nb(*markdown, tags=("parameters",)):
        cells = [{"cell_type": "markdown", "source": m, "metadata": {}} for m in markdown]
        cells += [{"cell_type": "code", "source": "x = 1", "metadata": {"tags": list(tags)}},
                  {"cell_type": "code", "source": "print(x)", "metadata": {}}]
        return {"cells": cells}

    good = nb("# Title\n\n## Overview\ntext", "## Prerequisites", "## 1. First\n```python\n# not a heading\n```",
              "### a subsection", "## 2. Second", "## Summary")
    assert template_errors(good) == []
    assert template_errors(nb("# T", "## Overview", "## Prerequisites", "## 2. Wrong", "## Summary"))
    assert template_errors(nb("# T", "## Overview", "## Prerequisites", "## 1. A", "## Conclusion"))
    assert template_errors(nb("# T", "## Prerequisites", "## Overview", "## 1. A", "## Summary"))
    assert template_errors(nb("# T", "# Again", "## Overview", "## Prerequisites", "## 1. A", "## Summary"))
    assert template_errors(nb("# T", "## Overview", "## Prerequisites", "## 1. A", "## Summary", tags=()))


def test_template_is_written_down_for_contributors():
    text = (ROOT / "book" / "building.md").read_text()
    for part in ("## Overview", "## Prerequisites", "## 1.", "## Summary", "parameters"):
        assert part in text, f"book/building.md no longer describes the chapter template ({part!r})"


# --------------------------------------------------------------------------------------------------------- config


def test_build_fails_on_errors_and_warnings():
    cfg = _config()
    assert cfg["execute"]["allow_errors"] is False
    assert cfg["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert cfg["only_build_toc_files"] is True
    script = (ROOT / "scripts" / "build_book.sh").read_text()
    assert re.search(r"build \"\$book\" -n -W --keep-going", script), "build_book.sh must build with -n -W --keep-going"


def test_local_extension_and_static_files_exist():
    cfg = _config()
    for name, path in cfg["sphinx"]["local_extensions"].items():
        assert (ROOT / path / f"{name}.py").is_file(), f"local extension {name} not found under {path}"
    assert (ROOT / cfg["html"]["favicon"]).is_file()
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()


def test_mathjax_is_served_from_the_build():
    cfg = _config()
    ext = _load_ext()
    path = cfg["sphinx"]["config"]["mathjax_path"]
    assert not re.match(r"^([a-z]+:)?//", path), "mathjax_path must not be a URL: the book is read offline"
    assert path == ext.MATHJAX_ENTRY
    es5 = ext.find_mathjax_es5()  # raises if django-static-mathjax is not installed
    assert ext.mathjax_version(es5).startswith("3.")
    for rel in ext.MATHJAX_FILES:
        assert (es5 / rel).exists(), f"MathJax file {rel} is missing from the installed package"
    text = (ROOT / "_config.yml").read_text()
    assert "cdn.jsdelivr" not in text and "unpkg.com" not in text


def test_mathjax_package_is_pinned_and_ranged():
    lock = (ROOT / "requirements-lock.txt").read_text()
    assert re.search(r"^django-static-mathjax==3\.2\.2\.\d+$", lock, re.M)
    assert "django-static-mathjax>=" in (ROOT / "pyproject.toml").read_text()


def test_docstring_escaping_keeps_rst_and_escapes_plain_text_marks():
    esc = _load_ext()._escape_line
    assert esc("shape (P, *weight_shape), |E| edges") == "shape (P, \\*weight_shape), \\|E\\| edges"
    assert esc("*emphasis* and **strong**") == "*emphasis* and **strong**"
    assert esc("``|x|`` and :math:`|x|` and \\*args") == "``|x|`` and :math:`|x|` and \\*args"
    assert esc("- item with |W ⊙ M|") == "- item with \\|W ⊙ M\\|"
    assert esc(":type x: int | None") == ":type x: int | None"
    assert esc("+---+---+") == "+---+---+"


# ------------------------------------------------------------------------------------------- citations and links


def _bib_keys() -> set[str]:
    from pybtex.database import parse_file

    return set(parse_file(str(ROOT / "book" / "references.bib")).entries.keys())


def _strip_code(markdown: str) -> str:
    """The prose of a Markdown text: fenced blocks and ``double-backtick`` spans (syntax examples) removed."""
    markdown = re.sub(r"^(```|~~~).*?^\1\s*$", "", markdown, flags=re.S | re.M)
    return re.sub(r"``.+?``", "", markdown, flags=re.S)


def _book_texts() -> dict[str, str]:
    texts = {str(p.relative_to(ROOT)): _strip_code(p.read_text()) for p in (ROOT / "book").glob("*.md")}
    for p in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(p.read_text()).get("cells", [])
        md = "\n".join(_cell_text(c) for c in cells if c.get("cell_type") == "markdown")
        texts[str(p.relative_to(ROOT))] = _strip_code(md)
    return texts


def test_bibliography_parses_and_has_the_promised_entries():
    keys = _bib_keys()
    assert REQUIRED_BIB_KEYS <= keys, f"missing from references.bib: {sorted(REQUIRED_BIB_KEYS - keys)}"


def test_every_citation_has_an_entry():
    keys = _bib_keys()
    unknown = {}
    for name, text in _book_texts().items():
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
            for key in (k.strip() for k in group.split(",")):
                if key not in keys:
                    unknown.setdefault(name, []).append(key)
    assert not unknown, f"citations without a references.bib entry: {unknown}"


def test_chapter_links_name_pages_of_the_book():
    bad = {}
    for name, text in _book_texts().items():
        for target in re.findall(r"\{chapter\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            if target.strip() not in BOOK_ORDER:
                bad.setdefault(name, []).append(target)
    assert not bad, f"{{chapter}} links to pages that are not in the book's order: {bad}"


def test_no_number_is_given_as_a_sparsity():
    # CONTRIBUTING: density is the kept fraction; the word sparsity is not used for a number.
    pattern = re.compile(r"\d\s*%?\s*sparsity|sparsity\s*(?:of\s*|=\s*|\()\s*\d", re.I)
    hits = {name: pattern.findall(text) for name, text in _book_texts().items()}
    hits = {k: v for k, v in hits.items() if v}
    assert not hits, f"give these numbers as densities: {hits}"


# ----------------------------------------------------------------------------------------------- browser check


def test_browser_check_scripts_are_valid():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "browser_check.sh")], check=True)
    subprocess.run([sys.executable, "-m", "py_compile", str(ROOT / "scripts" / "browser_check.py")], check=True)
    text = (ROOT / "scripts" / "browser_check.py").read_text()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        assert f'"{flag}"' in text
    assert '("127.0.0.1", 0)' in text, "the browser check must serve the book on 127.0.0.1 only"
