"""The browser check (scripts/browser_check.py) passes a good site and names every defect of a broken one.

Two tiny sites are written here: a good one (a forwarding index.html, an introduction with MathJax math, a figure and
links with anchors, a chapter with a figure) and the same site plus one page per defect.  The checker runs as
`make test-browser` runs it (a subprocess, Debian's Chromium), and its report is read back line by line.

Needs Debian's chromium: the module is skipped where it is missing (`make test-browser` installs it and then runs this
module with PAGS_REQUIRE_BROWSER=1, which turns the skip into a failure).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "browser_check.py"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")

if not CHROMIUM:
    if os.environ.get("PAGS_REQUIRE_BROWSER") == "1":
        pytest.fail("Debian's chromium is required (PAGS_REQUIRE_BROWSER=1) but not installed", pytrace=False)
    pytest.skip("Debian's chromium is not installed (make test-browser installs it)", allow_module_level=True)

MATHJAX_CONFIG = '<script>window.MathJax = {tex: {packages: {"[-]": ["noundefined"]}}};</script>'


def _page(title: str, body: str, *, depth: int, mathjax: bool = False, head: str = "") -> str:
    up = "../" * depth
    mj = f'{MATHJAX_CONFIG}<script defer src="{up}_static/mathjax/tex-mml-chtml.js"></script>' if mathjax else ""
    # an icon of its own, as the book's pages have: else the browser asks for /favicon.ico, a 404 the check reports
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<link rel="icon" href="data:,">{mj}{head}</head>'
            f"<body><main><article>{body}</article></main></body></html>")


def _png(path: Path, width: int = 40, height: int = 30) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (30, 120, 200)).save(path)


def _mathjax_es5() -> Path:
    spec = importlib.util.spec_from_file_location("pags_book", ROOT / "book" / "_ext" / "pags_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    return ext.find_mathjax_es5()


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")


def _good_site(root: Path) -> None:
    es5 = _mathjax_es5()
    mj = root / "_static" / "mathjax"
    mj.mkdir(parents=True)
    shutil.copy2(es5 / "tex-mml-chtml.js", mj / "tex-mml-chtml.js")
    shutil.copytree(es5 / "output" / "chtml" / "fonts", mj / "output" / "chtml" / "fonts")
    _png(root / "_images" / "figure.png")
    _write(root, "index.html", '<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; url=book/intro.html">'
                               "</head><body></body></html>")
    _write(root, "book/intro.html", _page("Introduction", (
        '<h1 id="top">Introduction</h1>'
        r'<p>Inline <span class="math notranslate nohighlight">\(\lambda_2 \le 2\sqrt{d-1}\)</span>.</p>'
        r'<div class="math notranslate nohighlight">\[\mu = \frac{1}{n}\sum_i x_i\]</div>'
        '<img src="../_images/figure.png" alt="a figure">'
        '<p><a href="#top">top</a> <a href="../notebooks/pags.html#results">results</a> '
        '<a href="https://arxiv.org/abs/2102.00000">a paper (links out are fine)</a></p>'), depth=1, mathjax=True))
    _write(root, "notebooks/pags.html", _page("PAGS", (
        '<h1 id="results">Results</h1><img src="../_images/figure.png" alt="the results">'
        '<p><a href="../book/intro.html#top">back</a></p>'), depth=1))
    _write(root, "_sources/notebooks/pags.ipynb", "{}")


#: page -> the defect the checker must name for it (a substring of one of its FAIL lines)
DEFECTS = {
    "bad/broken_link.html": "broken link: ../book/nowhere.html",
    "bad/broken_anchor.html": "broken anchor: ../book/intro.html#no-such-id (no id 'no-such-id' in book/intro.html)",
    "bad/missing_image.html": "image did not load: ../_images/missing.png",
    "bad/console_error.html": "console.error: deliberate failure",
    "bad/uncaught.html": "uncaught exception: deliberate throw",
    "bad/remote.html": "remote request: https://cdn.example.org/lib.js",
    "bad/math_error.html": r"MathJax error: Undefined control sequence \nosuchmacro",
    "bad/math_unloaded.html": "page has math but MathJax did not load",
    "notebooks/no_figure.html": "chapter page without a loaded figure",
}


def _bad_site(root: Path) -> None:
    _good_site(root)
    math = r'<p><span class="math notranslate nohighlight">\(\nosuchmacro x\)</span></p>'
    pages = {
        "bad/broken_link.html": '<a href="../book/nowhere.html">gone</a>',
        "bad/broken_anchor.html": '<a href="../book/intro.html#no-such-id">gone</a>',
        "bad/missing_image.html": '<img src="../_images/missing.png" alt="missing">',
        "bad/console_error.html": '<script>console.error("deliberate failure")</script>',
        "bad/uncaught.html": '<script>throw new Error("deliberate throw")</script>',
        "bad/remote.html": '<script src="https://cdn.example.org/lib.js"></script>',
        "bad/math_error.html": math,
        "bad/math_unloaded.html": r'<p><span class="math notranslate nohighlight">\(x^2\)</span></p>',
        "notebooks/no_figure.html": "<h1>A chapter without a figure</h1>",
    }
    for rel, body in pages.items():
        _write(root, rel, _page(rel, body, depth=1, mathjax=rel == "bad/math_error.html"))
    _write(root, "_sources/notebooks/no_figure.ipynb", "{}")


def _run(site: Path, shots: Path) -> tuple[int, str, dict[str, list[str]], dict[str, list[str]]]:
    """Run the checker; return its exit code, its output, the table's row per page and the FAIL lines per page."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--html", str(site), "--screenshots", str(shots),
                           "--chromium", CHROMIUM], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if p.relative_to(site).parts[0] not in ("_static", "_sources", "_images")}
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.split()[:1] and
            line.split()[0] in pages}
    fails: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("FAIL ") and ": " in line:
            page, defect = line[5:].split(": ", 1)
            fails.setdefault(page, []).append(defect)
    return proc.returncode, out, rows, fails


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    site = tmp_path_factory.mktemp("good_site")
    _good_site(site)
    shots = tmp_path_factory.mktemp("good_shots")
    return (site, shots, *_run(site, shots))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    site = tmp_path_factory.mktemp("bad_site")
    _bad_site(site)
    return (site, *_run(site, tmp_path_factory.mktemp("bad_shots")))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_good_site_passes_with_math_typeset_and_screenshots(good):
    site, shots, rc, out, rows, fails = good
    assert rc == 0, out
    assert not fails, out
    assert set(rows) == {"index.html", "book/intro.html", "notebooks/pags.html"}, out
    # columns: page kind result load-ms images math links console remote
    assert rows["index.html"][1:3] == ["redirect", "ok"], out
    intro, chapter = rows["book/intro.html"], rows["notebooks/pags.html"]
    assert intro[1:3] == ["page", "ok"] and chapter[1:3] == ["chapter", "ok"], out
    assert intro[4] == "1/1" and chapter[4] == "1/1", out  # the figure loaded
    assert intro[5] == "2/2", out  # MathJax typeset both formulas
    assert intro[7:9] == ["0", "0"], out  # no console error, no remote request
    assert "browser: 3 passed, 0 failed" in out
    for name in ("intro.png", "results.png"):
        width, height = _png_size(shots / name)
        assert width == 1280 and height >= 900, (name, width, height)


def test_bad_site_fails_naming_each_page_and_defect(bad):
    site, rc, out, rows, fails = bad
    assert rc == 1, out
    for page, defect in DEFECTS.items():
        assert rows[page][2] == "FAIL", f"{page} was not failed:\n{out}"
        assert any(defect in f for f in fails.get(page, [])), f"{page}: expected {defect!r}, got {fails.get(page)}"
    # the good pages of the same site still pass: every FAIL line names a broken page
    assert set(fails) == set(DEFECTS), out
    assert all(rows[p][2] == "ok" for p in ("index.html", "book/intro.html", "notebooks/pags.html")), out
    assert f"browser: 3 passed, {len(DEFECTS)} failed" in out


def test_bad_site_counts_console_errors_and_remote_requests(bad):
    site, rc, out, rows, fails = bad
    assert int(rows["bad/console_error.html"][7]) >= 1 and int(rows["bad/uncaught.html"][7]) >= 1, out
    assert int(rows["bad/remote.html"][8]) >= 1, out
    # a remote script is named twice over: the element that loads it and the request that the offline browser refused
    remote = fails["bad/remote.html"]
    assert any(f.startswith("<script src> loads a remote resource: https://cdn.example.org/lib.js") for f in remote)
    assert any("ERR_NAME_NOT_RESOLVED" in f for f in remote), remote
    assert rows["bad/broken_link.html"][6] == "0/1" and rows["bad/missing_image.html"][4] == "0/1", out


def test_missing_book_or_browser_is_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--html", str(tmp_path), "--chromium", CHROMIUM],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no built book" in proc.stderr
    _write(tmp_path, "index.html", "<html></html>")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--html", str(tmp_path), "--chromium",
                           str(tmp_path / "no-chromium")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "chromium not found" in proc.stderr
