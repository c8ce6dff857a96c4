"""The book build and nbval must fail when a notebook cell raises (jupyter-book exits 0 on that by default)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _write_book(tmp: Path, cell_source: str) -> Path:
    book = tmp / "book"
    book.mkdir()
    # The real configuration, so the test checks the settings the project builds with.
    cfg = (ROOT / "_config.yml").read_text()
    (book / "_config.yml").write_text(cfg)
    # ... and the files it names relative to the book root (local extension, static files, bibliography).
    (book / "book").mkdir()
    for support in ("_ext", "_static"):
        shutil.copytree(ROOT / "book" / support, book / "book" / support,
                        ignore=shutil.ignore_patterns("__pycache__", "mathjax"))
    shutil.copy2(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: nb\n")
    (book / "intro.md").write_text("# Intro\n\nA tiny book.\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook"), nbformat.v4.new_code_cell(cell_source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "nb.ipynb")
    return book


def _build(book: Path) -> subprocess.CompletedProcess:
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        pytest.skip("jupyter-book is not installed in this environment")
    env_script = ROOT / "scripts" / "build_book.sh"
    return subprocess.run(
        ["bash", str(env_script), str(book)],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "JUPYTER_BOOK": str(jb)},
    )


@pytest.mark.slow
def test_build_succeeds_on_a_good_notebook(tmp_path):
    res = _build(_write_book(tmp_path, "print(1 + 1)"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "book" / "_build" / "html" / "nb.html").is_file()


@pytest.mark.slow
def test_build_fails_when_a_cell_raises(tmp_path):
    res = _build(_write_book(tmp_path, "raise RuntimeError('deliberate failure 4711')"))
    assert res.returncode != 0
    # the execution log with the traceback is printed for CI
    assert "deliberate failure 4711" in res.stdout + res.stderr


@pytest.mark.slow
def test_nbval_fails_when_a_cell_raises(tmp_path):
    book = _write_book(tmp_path, "raise RuntimeError('deliberate failure 4712')")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", str(book / "nb.ipynb")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert res.returncode == 1, res.stdout[-3000:]
    assert "deliberate failure 4712" in res.stdout
