"""pags_book: the book's local Sphinx extension (loaded through ``sphinx.local_extensions`` in ``_config.yml``).

It does three small things, each documented in ``book/building.md``:

1. **Offline MathJax.**  The MathJax 3 files come from the ``django-static-mathjax`` wheel (pinned in
   ``requirements-lock.txt``; it has no dependencies and ships the upstream ``es5/`` build).  After the HTML build the
   files a page can load are copied to ``_build/html/_static/mathjax/``, and ``mathjax_path`` points there, so no page
   loads a script from a CDN.  A remote ``mathjax_path`` is refused.
2. **``{chapter}`` role.**  ``{chapter}`Title <notebooks/pags>``` links to a chapter when that document is part of the
   build and renders the title as plain text when it is not yet in the table of contents, so the introduction can
   describe every chapter while the toc lists only the pages that exist.
3. **``pags-api`` directive.**  Writes the API reference: one section per ``pags_core`` module with an autosummary
   table and the autodoc entries of the names in the module's ``__all__``.  An empty module gets a one-line note
   instead of an error; modules not named in the directive are appended, so the page never silently omits one.
   References written as ``pags_core.name`` (the way the notebooks call things) resolve to the documented
   ``pags_core.module.name``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import pkgutil
import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------------
# 1. Offline MathJax
# ---------------------------------------------------------------------------------------------------------------------

#: Where the book's pages load MathJax from, relative to ``_static`` (Sphinx's rule for a relative ``mathjax_path``).
MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
#: The parts of MathJax's ``es5/`` build that a page can load: the combined TeX/MathML + CHTML component (the one
#: Sphinx uses by default), the components its loader fetches on demand (TeX extensions, the menu, the accessibility
#: explorer and its speech maps) and the CHTML fonts.  The SVG output and the node.js entry points are not copied.
MATHJAX_FILES = (
    "tex-mml-chtml.js",
    "core.js",
    "loader.js",
    "startup.js",
    "input/tex.js",
    "input/tex-base.js",
    "input/tex-full.js",
    "input/mml.js",
    "input/tex",
    "input/mml",
    "output/chtml.js",
    "output/chtml",
    "ui",
    "a11y",
    "sre",
)
_REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


def find_mathjax_es5() -> Path:
    """The ``es5`` folder of the MathJax copy installed by ``django-static-mathjax`` (import package ``mathjax``)."""
    spec = importlib.util.find_spec("mathjax")
    for location in (spec.submodule_search_locations or []) if spec else []:
        es5 = Path(location) / "static" / "mathjax" / "es5"
        if (es5 / "tex-mml-chtml.js").is_file():
            return es5
    raise ExtensionError(
        "MathJax files not found: the book serves MathJax itself and needs the 'django-static-mathjax' package "
        "(pinned in requirements-lock.txt; `make book` installs it)"
    )


def mathjax_version(es5: Path) -> str:
    """The MathJax version recorded in the copy's ``package.json``."""
    return json.loads((es5.parent / "package.json").read_text(encoding="utf-8"))["version"]


def _check_mathjax_path(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    path = app.config.mathjax_path
    if _REMOTE.match(path):
        raise ExtensionError(
            f"mathjax_path is {path!r}, a remote URL; this book is read offline and serves MathJax from its own "
            f"build: set mathjax_path to {MATHJAX_ENTRY!r} in _config.yml"
        )
    if path != MATHJAX_ENTRY:
        raise ExtensionError(f"mathjax_path must be {MATHJAX_ENTRY!r} (the files this extension copies), not {path!r}")
    es5 = find_mathjax_es5()
    version = mathjax_version(es5)
    if not version.startswith("3."):
        raise ExtensionError(f"expected MathJax 3 from django-static-mathjax, found {version}")
    logger.info(f"[pags_book] MathJax {version} is served from _static/mathjax (copied from {es5})")


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    es5 = find_mathjax_es5()
    dest = Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    for rel in MATHJAX_FILES:
        src = es5 / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        else:
            raise ExtensionError(f"MathJax file {src} is missing from the installed django-static-mathjax")
    licence = es5.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, dest / "LICENSE")
    (dest / "VERSION").write_text(mathjax_version(es5) + "\n", encoding="utf-8")


def _offline_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop sphinx-thebe's assets (thebe is off; its script names a CDN URL) and refuse remote scripts and styles.

    Connected with a late priority so that it sees the scripts other extensions add on this event (MathJax).
    """
    scripts = []
    for js in context.get("script_files", []):
        filename = str(getattr(js, "filename", js) or "")
        body = getattr(js, "attributes", {}).get("body", "")
        if filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body:
            continue
        if _REMOTE.match(filename):
            logger.warning(f"[pags_book] page {pagename} would load a remote script {filename}; the book is offline")
        scripts.append(js)
    context["script_files"] = scripts
    styles = []
    for css in context.get("css_files", []):
        filename = str(getattr(css, "filename", css) or "")
        if filename.endswith("sphinx-thebe.css"):
            continue
        if _REMOTE.match(filename):
            logger.warning(f"[pags_book] page {pagename} would load a remote style sheet {filename}")
        styles.append(css)
    context["css_files"] = styles


def _drop_thebe_config(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """sphinx-thebe appends an inert Binder configuration to every page even when thebe is off; drop it."""
    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if "text/x-thebe-config" in text or text.strip().startswith("<script>kernelName ="):
            raw.parent.remove(raw)


# ---------------------------------------------------------------------------------------------------------------------
# 2. The {chapter} role
# ---------------------------------------------------------------------------------------------------------------------


class chapter_ref(nodes.Inline, nodes.TextElement):
    """A link to a chapter that is resolved (or turned into plain text) once every document has been read."""


_EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.DOTALL)


def chapter_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{chapter}`Title <docname>``` or ``{chapter}`docname```; docname is relative to the book root."""
    match = _EXPLICIT.match(text.strip())
    title, target = (match.group(1).strip(), match.group(2).strip()) if match else ("", text.strip())
    target = target.lstrip("/")
    for suffix in (".ipynb", ".md"):
        target = target[: -len(suffix)] if target.endswith(suffix) else target
    node = chapter_ref(rawtext, title, target=target)
    env = inliner.document.settings.env
    if not hasattr(env, "pags_chapter_docs"):
        env.pags_chapter_docs = set()
    env.pags_chapter_docs.add(env.docname)
    return [node], []


def _resolve_chapters(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    env = app.env
    for node in list(doctree.findall(chapter_ref)):
        target = node["target"]
        title = node.astext()
        if target in env.found_docs:
            if not title:
                title = env.titles[target].astext() if target in env.titles else target
            ref = nodes.reference("", "", internal=True, refuri=app.builder.get_relative_uri(docname, target))
            ref += nodes.inline(title, title, classes=["std", "std-doc"])
            node.replace_self(ref)
        else:
            node.replace_self(nodes.inline(title or target, title or target, classes=["pags-chapter-pending"]))


def _always_outdated(app, env, added, changed, removed):
    # Pages using {chapter} depend on which documents exist, and the API page on the package's current names, so
    # both are re-read on every build (they are cheap).
    docs = set(getattr(env, "pags_chapter_docs", set())) | set(getattr(env, "pags_api_aliases", {}))
    return sorted(d for d in docs if d in env.found_docs)


# ---------------------------------------------------------------------------------------------------------------------
# 3. The API reference
# ---------------------------------------------------------------------------------------------------------------------


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:  # no __all__: the public names defined in the module itself
        names = [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__
            and (inspect.isclass(obj) or inspect.isfunction(obj))
        ]
    return list(names)


def _short_value(obj: Any) -> bool:
    """Whether a module constant is worth showing with its value (plain data with a short repr)."""
    plain = (str, int, float, bool, type(None))
    if isinstance(obj, plain):
        return len(repr(obj)) <= 80
    if isinstance(obj, (tuple, list, frozenset, set)):
        return all(isinstance(x, plain) for x in obj) and len(repr(obj)) <= 120
    return False


def _package_modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(pkg.__path__)
        if not info.name.startswith("_")
    ]


class PagsApiDirective(SphinxDirective):
    """Document the listed modules (one per content line, ``module [title]``) and any other public module.

    Options: ``:package:`` the package whose modules are appended when not listed (default ``pags_core``).
    """

    has_content = True
    option_spec = {"package": lambda s: s.strip()}

    def run(self) -> list[nodes.Node]:
        package = self.options.get("package", "pags_core")
        listed: list[tuple[str, str]] = []
        for line in self.content:
            line = line.strip()
            if line:
                mod, _, title = line.partition(" ")
                listed.append((mod, title.strip()))
        try:
            others = [m for m in _package_modules(package) if m not in {m for m, _ in listed}]
        except Exception as exc:  # noqa: BLE001 - reported as a build warning, which fails `make book`
            logger.warning(f"[pags_book] cannot import {package}: {exc!r}", location=self.get_location())
            return []
        listed += [(m, "") for m in others]

        pkg = importlib.import_module(package)
        seen: dict[int, str] = {}
        aliases: dict[str, str] = {}
        lines: list[str] = []
        for modname, title in listed:
            try:
                module = importlib.import_module(modname)
            except Exception as exc:  # noqa: BLE001
                logger.warning(f"[pags_book] cannot import {modname}: {exc!r}", location=self.get_location())
                continue
            heading = f"``{modname}``" + (f": {title}" if title else "")
            lines += [heading, "=" * (len(heading) + 4), "", f".. automodule:: {modname}", "   :no-members:", ""]
            documented, reexported, missing = [], [], []
            for name in _public_names(module):
                if not hasattr(module, name):
                    missing.append(name)
                    continue
                obj = getattr(module, name)
                if inspect.ismodule(obj):
                    continue
                full = f"{modname}.{name}"
                key = id(obj) if (inspect.isclass(obj) or callable(obj)) else id(full)
                if key in seen:
                    reexported.append((name, seen[key]))
                    continue
                seen[key] = full
                documented.append((name, obj))
                if getattr(pkg, name, None) is obj:
                    aliases.setdefault(f"{package}.{name}", full)
                home = getattr(obj, "__module__", None)
                qual = getattr(obj, "__qualname__", None)
                if home and qual and f"{home}.{qual}" != full:
                    aliases.setdefault(f"{home}.{qual}", full)
            for name in missing:
                logger.warning(
                    f"[pags_book] {modname}.__all__ names {name!r}, which the module does not define",
                    location=self.get_location(),
                )
            if not documented and not reexported:
                lines += ["*This module has no public names yet.*", ""]
                continue
            if documented:
                lines += [".. autosummary::", "   :nosignatures:", ""]
                lines += [f"   {name}" for name, _ in documented]
                lines += [""]
            if reexported:
                lines += ["Also available here: " + ", ".join(f":py:obj:`{name} <{full}>`" for name, full in reexported), ""]
            for name, obj in documented:
                if inspect.isclass(obj):
                    kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
                    lines += [f".. {kind}:: {name}", "   :members:", "   :show-inheritance:", ""]
                elif callable(obj):
                    lines += [f".. autofunction:: {name}", ""]
                else:
                    lines += [f".. autodata:: {name}"] + ([] if _short_value(obj) else ["   :no-value:"]) + [""]

        if not hasattr(self.env, "pags_api_aliases"):
            self.env.pags_api_aliases = {}
        self.env.pags_api_aliases[self.env.docname] = aliases

        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="<pags-api>"), holder)
        return holder.children


# Docstrings in pags_core are written to read well in help() as plain text, with formulas such as |E|, |W ⊙ M| or
# shapes such as (P, *weight_shape).  In reStructuredText |x| is a substitution reference and a lone * starts emphasis,
# so outside literals, roles and escapes the bars and the unpaired stars are escaped; *emphasis* and **strong** stay.
_RST_SPAN = re.compile(r"(``.+?``|(?::[\w:+.-]+:)?`[^`]+`_{0,2}|\\.)")
_EMPHASIS = re.compile(r"(?<![\w*\\])(\*\*?)(?=[^\s*])(.+?)(?<=[^\s\\*])\1(?![\w*])")


def _escape_text(text: str) -> str:
    text = text.replace("|", "\\|")
    out, pos = [], 0
    for m in _EMPHASIS.finditer(text):
        out.append(text[pos:m.start()].replace("*", "\\*"))
        out.append(m.group(0))
        pos = m.end()
    out.append(text[pos:].replace("*", "\\*"))
    return "".join(out)


_KEEP_LINE = re.compile(r"^\s*(\||\+[-=+]|>>>|\.\.\.|:type |:rtype:|:vartype )")
_BULLET = re.compile(r"^(\s*(?:[*+-]|\d+[.)]|#\.)\s+)")


def _escape_line(line: str) -> str:
    if ("|" not in line and "*" not in line) or _KEEP_LINE.match(line):
        return line  # tables, line blocks, doctest lines and type fields (int | None) keep their marks
    bullet = _BULLET.match(line)
    head, line = (bullet.group(1), line[bullet.end():]) if bullet else ("", line)
    parts = _RST_SPAN.split(line)
    return head + "".join(part if i % 2 else _escape_text(part) for i, part in enumerate(parts))


def _process_docstring(app: Sphinx, what: str, name: str, obj: Any, options, lines: list[str]) -> None:
    if not name.startswith("pags_core"):
        return
    if what in ("data", "attribute") and not (inspect.isclass(obj) or callable(obj)):
        # autodoc falls back to the docstring of the value's type (dict, Registry, ...) when a module-level constant
        # has no doc comment of its own; that text describes the type, not the constant.
        type_doc = inspect.cleandoc(type(obj).__doc__ or "").strip()
        if type_doc and "\n".join(lines).strip() == type_doc:
            lines[:] = []
            return
    in_literal, literal_indent = False, 0
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if in_literal:
            if line.strip() and indent <= literal_indent:
                in_literal = False
            else:
                continue
        lines[i] = _escape_line(line)
        if line.rstrip().endswith("::") or line.strip().startswith(".. code") or line.strip().startswith(".. math"):
            in_literal, literal_indent = True, indent


def _purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "pags_api_aliases", {}).pop(docname, None)
    getattr(env, "pags_chapter_docs", set()).discard(docname)


def _resolve_import(target: str) -> Any:
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _missing_reference(app: Sphinx, env, node, contnode):
    """Resolve ``pags_core.name`` to the documented ``pags_core.module.name``; leave undocumented pags_core objects
    unlinked (plain text, no warning); let genuinely unknown pags_core names warn."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("pags_core"):
        return None
    aliases = {a: c for per_doc in getattr(env, "pags_api_aliases", {}).values() for a, c in per_doc.items()}
    for alias in sorted(aliases, key=len, reverse=True):
        if target == alias or target.startswith(alias + "."):
            new_target = aliases[alias] + target[len(alias):]
            new_node = node.deepcopy()
            new_node["reftarget"] = new_target
            resolved = env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], new_target, new_node, contnode
            )
            if resolved is not None:
                return resolved
    if _resolve_import(target) is not None:
        return contnode  # exists in the code but is not part of the documented API
    return None


# ---------------------------------------------------------------------------------------------------------------------


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.mathjax")
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.autosummary")
    app.connect("builder-inited", _check_mathjax_path)
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _offline_assets, priority=900)
    app.connect("doctree-resolved", _drop_thebe_config, priority=900)

    app.add_node(chapter_ref)
    app.add_role("chapter", chapter_role)
    app.connect("doctree-resolved", _resolve_chapters)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("env-purge-doc", _purge)

    app.add_directive("pags-api", PagsApiDirective)
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _missing_reference)
    return {"version": "1.0", "parallel_read_safe": False, "parallel_write_safe": True}
