#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and check what a reader would see.

Playwright's Python package drives Debian's Chromium through ``executable_path`` (Playwright's own browser download is
never used).  The book is served on 127.0.0.1 only by a child process of this script, stopped by its PID at the end,
and Chromium's host resolver maps every other host to "not found", so a page that reaches for the network fails
loudly instead of quietly working online.

For every ``*.html`` under the build (``_static``, ``_sources`` and ``_images`` excepted) it checks:

* no console error, uncaught exception, failed request or HTTP error status;
* no request to anything but the local server, and no element that loads a remote script, style sheet or image;
* every local ``href``/``src`` names a file of the build, and every ``#fragment`` an id of the target page;
* every image loaded (``naturalWidth > 0``), and a chapter page (built from a notebook) has at least one figure;
* on a page with math, MathJax typeset it (``mjx-container``) and reported no TeX error (``mjx-merror``);
* a page that forwards with ``<meta http-equiv="refresh">`` (jupyter-book's ``index.html``) reaches its target.

It prints one row per page and one ``FAIL <page>: <defect>`` line per defect, saves screenshots of the introduction
and of one results page, and exits 1 on any failure (2 when it cannot run at all).

Usage: browser_check.py --html _build/html [--screenshots _build/screenshots] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import functools
import html
import http.server
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    # Only the local server resolves: a page that reaches for the network fails (and is reported) instead.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT = (1280, 900)
SCREENSHOT_MAX_HEIGHT = 7000
PAGE_TIMEOUT_MS = 30_000
#: Preferred "results page" for the second screenshot: the first of these chapters that is in the build.
RESULTS_PAGES = (
    "notebooks/itop_correlation.html",
    "notebooks/pags.html",
    "notebooks/pegs.html",
    "notebooks/weighted_metrics.html",
    "notebooks/ramanujan_basics.html",
    "notebooks/custom_architecture.html",
)
INTRO_PAGE = "book/intro.html"
#: Schemes that name no resource to fetch or check.
INERT_SCHEMES = ("mailto", "javascript", "data", "blob", "about", "tel")

# Runs in the page once it has loaded: waits for MathJax's first typeset, fonts and images, then reports.
COLLECT_JS = r"""
async () => {
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { await Promise.race([mj.startup.promise, sleep(30000)]); }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  await Promise.all(Array.from(document.images).map(img => (img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 10000); }))));
  await sleep(50);
  const refs = [];
  for (const el of document.querySelectorAll('[href], [src]')) {
    for (const attr of ['href', 'src']) {
      const v = el.getAttribute(attr);
      if (v === null) continue;
      let url = null;
      try { url = new URL(v, location.href).href; } catch (e) { url = null; }
      refs.push({tag: el.tagName.toLowerCase(), attr, value: v, url});
    }
  }
  const imgs = Array.from(document.images).map(i => ({
    src: i.getAttribute('src') || '', ok: i.complete && i.naturalWidth > 0,
    content: !!i.closest('article, .bd-article, main')}));
  const mathSources = document.querySelectorAll('article .math, article script[type^="math/tex"]').length;
  const mjx = document.querySelectorAll('mjx-container').length;
  const merr = Array.from(document.querySelectorAll('mjx-merror')).map(
      e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5);
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
      .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.getAttribute('name')));
  return {href: location.href, refs, imgs, mathSources, mjx, merr, mathjax: (mj && mj.version) || null, ids,
          height: Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight)};
}
"""


# ------------------------------------------------------------------------------------------------ the local server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The browser cancels requests it no longer needs (a closed tab, a font MathJax did not use).
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def serve_forever(root: Path) -> None:
    """The server process (``--serve``): serve ``root`` on 127.0.0.1 only and print the port.  It runs until it is
    stopped by PID or its standard input closes, so it also ends when the checker that started it is killed."""
    handler = functools.partial(QuietHandler, directory=str(root))
    with LocalServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), httpd.shutdown()), daemon=True).start()
        print(httpd.server_address[1], flush=True)
        httpd.serve_forever()


def start_server(root: Path, timeout: float = 30) -> tuple[subprocess.Popen, str]:
    """Start :func:`serve_forever` as a child process; return it and the base URL it serves."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(root)],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.isdigit():
        stop_server(proc)
        raise RuntimeError(f"the local HTTP server did not start (exit code {proc.returncode}, said {line!r})")
    return proc, f"http://127.0.0.1:{line}/"


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server process by its PID: SIGTERM, then SIGKILL if it has not exited within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


# --------------------------------------------------------------------------------------------------- one page


@dataclass
class PageResult:
    page: str
    kind: str
    load_ms: int = 0
    images: tuple[int, int] = (0, 0)
    math: tuple[int, int] = (0, 0)
    links: tuple[int, int] = (0, 0)
    console: int = 0
    remote: int = 0
    failures: list[str] = field(default_factory=list)


class PageEvents:
    """What one browser tab reports while it shows a page: console errors, uncaught exceptions, every request and
    how it ended.  Each page is opened in a tab of its own, so no event of one page is counted for another."""

    def __init__(self, tab, base: str):
        self.base = base
        self.failures: list[str] = []
        self.console = 0
        self.remote = 0
        tab.on("console", self._console)
        tab.on("pageerror", self._pageerror)
        tab.on("request", self._request)
        tab.on("requestfailed", self._requestfailed)
        tab.on("response", self._response)

    def _local(self, url: str) -> bool:
        return url.startswith(self.base) or url.startswith(tuple(s + ":" for s in INERT_SCHEMES))

    def _console(self, msg) -> None:
        if msg.type in ("error", "assert"):
            self.console += 1
            where = (msg.location or {}).get("url", "")
            self.failures.append(f"console.{msg.type}: {msg.text[:300]}" + (f" ({where})" if where else ""))

    def _pageerror(self, exc) -> None:
        self.console += 1
        self.failures.append(f"uncaught exception: {str(getattr(exc, 'message', exc))[:300]}")

    def _request(self, request) -> None:
        if not self._local(request.url):
            self.remote += 1
            self.failures.append(f"remote request: {request.url}")

    def _requestfailed(self, request) -> None:
        # A local request the browser cancelled itself (net::ERR_ABORTED) is no defect of the page.
        if not request.url.startswith(self.base) or request.failure != "net::ERR_ABORTED":
            self.failures.append(f"request failed ({request.failure}): {request.url}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failures.append(f"HTTP {response.status}: {response.url}")


_ID_RE = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")
_REFRESH_RE = re.compile(r"""<meta[^>]+http-equiv=["']refresh["'][^>]*content=["'][^"']*url=([^"']+)["']""", re.I)


class IdIndex:
    """The ids (and a[name]s) of each built HTML file, read from disk once."""

    def __init__(self):
        self.cache: dict[Path, set[str]] = {}

    def __call__(self, path: Path) -> set[str]:
        if path not in self.cache:
            text = path.read_text(encoding="utf-8", errors="replace")
            self.cache[path] = {html.unescape(m) for m in _ID_RE.findall(text)}
        return self.cache[path]


def local_target(root: Path, base: str, url: str) -> tuple[Path | None, str]:
    """The file a same-origin URL names (None if it is not under the build), and its decoded fragment."""
    parts = urllib.parse.urlsplit(url)
    rel = urllib.parse.unquote(parts.path[len(urllib.parse.urlsplit(base).path):])
    path = (root / rel).resolve()
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return None, ""
    if path.is_dir():
        path = path / "index.html"
    return path, urllib.parse.unquote(parts.fragment)


def is_notebook_page(root: Path, page: str) -> bool:
    stem = page[: -len(".html")]
    return (root / "_sources" / f"{stem}.ipynb").is_file()


def _first_line(exc: Exception) -> str:
    return (str(getattr(exc, "message", exc)).strip().splitlines() or [""])[0][:300]


def check_redirect(tab, root: Path, base: str, page: str, target: str, res: PageResult) -> PageResult:
    """A forwarding page passes when its target is a file of the build and the browser arrives there."""
    from playwright.sync_api import Error as PlaywrightError

    res.kind = "redirect"
    url = urllib.parse.urljoin(base + page, target)
    path, _ = local_target(root, base, url)
    if path is None or not path.is_file():
        res.failures.append(f"redirect target {target} does not exist")
        return res
    t0 = time.monotonic()
    try:
        tab.goto(base + page, wait_until="commit", timeout=PAGE_TIMEOUT_MS)
        tab.wait_for_url(lambda u: u.split("#")[0] == url.split("#")[0], wait_until="load", timeout=15_000)
    except PlaywrightError as exc:
        res.failures.append(f"the browser did not follow the redirect to {target}: {_first_line(exc)}")
    res.load_ms = int((time.monotonic() - t0) * 1000)
    res.links = (1, 0)
    return res


def check_page(context, root: Path, base: str, page: str, ids: IdIndex) -> PageResult:
    """Open ``page`` in a new tab of ``context`` and check it (see the module docstring)."""
    from playwright.sync_api import Error as PlaywrightError

    res = PageResult(page, "chapter" if is_notebook_page(root, page) else "page")
    refresh = _REFRESH_RE.search((root / page).read_text(encoding="utf-8", errors="replace")[:4000])
    tab = context.new_page()
    try:
        if refresh:  # jupyter-book's index.html forwards to the root page: check that the browser gets there
            return check_redirect(tab, root, base, page, refresh.group(1).strip(), res)
        events = PageEvents(tab, base)
        t0 = time.monotonic()
        try:
            tab.goto(base + page, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            info = tab.evaluate(COLLECT_JS)
        except PlaywrightError as exc:
            res.failures.append(f"could not load and inspect the page: {_first_line(exc)}")
            info = None
        res.load_ms = int((time.monotonic() - t0) * 1000)
        tab.wait_for_timeout(200)  # late requests (fonts, MathJax components loaded on demand) report here
        res.failures += events.failures
        res.console, res.remote = events.console, events.remote
        if info is not None:
            _check_contents(info, root, base, ids, res)
        return res
    finally:
        tab.close()


def _check_contents(info: dict, root: Path, base: str, ids: IdIndex, res: PageResult) -> None:
    """Links, anchors, remote resources, images and math of a page, from what :data:`COLLECT_JS` reported."""
    own_ids = set(info["ids"])
    checked = broken = 0
    for ref in info["refs"]:
        url = ref["url"]
        if url is None:
            broken += 1
            res.failures.append(f"unparsable {ref['attr']} on <{ref['tag']}>: {ref['value']!r}")
            continue
        if urllib.parse.urlsplit(url).scheme in INERT_SCHEMES:
            continue
        if not url.startswith(base):
            if ref["tag"] != "a":  # a link to elsewhere is fine to read later; loading from elsewhere is not
                res.remote += 1
                res.failures.append(f"<{ref['tag']} {ref['attr']}> loads a remote resource: {url}")
            continue
        checked += 1
        path, fragment = local_target(root, base, url)
        if path is None or not path.is_file():
            broken += 1
            res.failures.append(f"broken link: {ref['value']} (<{ref['tag']} {ref['attr']}>)")
            continue
        if fragment and path.suffix == ".html":
            same_page = url.split("#")[0] == info["href"].split("#")[0]
            known = own_ids if same_page else ids(path)
            if fragment not in known:
                broken += 1
                res.failures.append(f"broken anchor: {ref['value']} (no id {fragment!r} in {path.relative_to(root)})")
    res.links = (checked, broken)

    imgs = info["imgs"]
    res.images = (sum(1 for i in imgs if i["ok"]), len(imgs))
    for i in imgs:
        if not i["ok"]:
            res.failures.append(f"image did not load: {i['src']}")
    if res.kind == "chapter" and not any(i["ok"] and i["content"] for i in imgs):
        res.failures.append("chapter page without a loaded figure")

    res.math = (info["mjx"], info["mathSources"])
    if info["mathSources"]:
        if not info["mathjax"]:
            res.failures.append("page has math but MathJax did not load")
        elif info["mjx"] == 0:
            res.failures.append("page has math but MathJax typeset none of it")
    for err in info["merr"]:
        res.failures.append(f"MathJax error: {err}")


def screenshot(context, url: str, dest: Path) -> None:
    """Open ``url`` in a new tab, let MathJax and the images finish, and save the page (up to a maximum height)."""
    tab = context.new_page()
    try:
        tab.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        height = max(VIEWPORT[1], min(int(tab.evaluate(COLLECT_JS)["height"]), SCREENSHOT_MAX_HEIGHT))
        tab.set_viewport_size({"width": VIEWPORT[0], "height": height})
        tab.wait_for_timeout(300)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(dest))
    finally:
        tab.close()


# ----------------------------------------------------------------------------------------------------- the run


def print_report(results: list[PageResult]) -> None:
    header = ("page", "kind", "result", "load ms", "images ok/all", "math typeset/src", "links ok/broken",
              "console errors", "remote")
    rows = [
        (r.page, r.kind, "FAIL" if r.failures else "ok", str(r.load_ms), f"{r.images[0]}/{r.images[1]}",
         f"{r.math[0]}/{r.math[1]}", f"{r.links[0] - r.links[1]}/{r.links[1]}", str(r.console), str(r.remote))
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    failed = [r for r in results if r.failures]
    if failed:
        print()
    for r in failed:
        for f in r.failures[:25]:
            print(f"FAIL {r.page}: {f}")
        if len(r.failures) > 25:
            print(f"FAIL {r.page}: ... and {len(r.failures) - 25} more")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", default="_build/html", type=Path, help="the built book (default: _build/html)")
    ap.add_argument("--screenshots", default="_build/screenshots", type=Path, help="where screenshots go")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium",
                    help="the Chromium binary (default: $CHROMIUM, else chromium on PATH)")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: be the server process
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve_forever(args.serve)
        return 0

    root = args.html.resolve()
    if not (root / "index.html").is_file():
        print(f"browser_check: no built book at {root} (run `make book` first)", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(f"browser_check: chromium not found at {args.chromium} (apt-get install -y chromium, as root)",
              file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser_check: the 'playwright' package is missing (it is pinned in requirements-lock.txt: make setup)",
              file=sys.stderr)
        return 2
    pages = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if p.relative_to(root).parts[0] not in ("_static", "_sources", "_images")
    )
    args.screenshots.mkdir(parents=True, exist_ok=True)
    for old in args.screenshots.glob("*.png"):
        old.unlink()

    shots: dict[str, Path] = {}
    results: list[PageResult] = []
    t_start = time.monotonic()
    try:
        server, base = start_server(root)
    except (RuntimeError, OSError) as exc:
        print(f"browser_check: {exc}", file=sys.stderr)
        return 2
    try:
        with sync_playwright() as pw:
            # launch() gives Chromium a fresh temporary user-data dir and removes it on close.
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS,
                                         timeout=60_000)
            try:
                context = browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]},
                                              device_scale_factor=1, service_workers="block")
                print(f"Chromium {browser.version} headless (Playwright), serving {root} at {base}")
                ids = IdIndex()
                for page in pages:
                    results.append(check_page(context, root, base, page, ids))
                # Screenshots: the introduction, and the first results chapter whose figures loaded.
                by_page = {r.page: r for r in results}
                shots[INTRO_PAGE] = args.screenshots / "intro.png"
                results_page = next((p for p in RESULTS_PAGES if p in by_page and by_page[p].images[0] > 0), None)
                if results_page:
                    shots[results_page] = args.screenshots / "results.png"
                for page, dest in shots.items():
                    if page in by_page:
                        try:
                            screenshot(context, base + page, dest)
                        except PlaywrightError as exc:
                            print(f"screenshot of {page} failed: {_first_line(exc)}")
            finally:
                browser.close()
    except PlaywrightError as exc:
        print(f"browser_check: could not drive chromium: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_server(server)

    print_report(results)
    for page, path in shots.items():
        print(f"screenshot of {page}: {path}" + ("" if path.is_file() else " (NOT WRITTEN)"))
    if len(shots) < 2:
        print("no chapter with figures is in this build: only the introduction was photographed")
    missing_shots = [p for p in shots.values() if not p.is_file()]
    if missing_shots:
        print("FAIL screenshots not written: " + ", ".join(map(str, missing_shots)))
    failed = [r for r in results if r.failures]
    print(f"\nbrowser: {len(results) - len(failed)} passed, {len(failed)} failed")
    print(f"browser check of {len(results)} pages finished in {time.monotonic() - t_start:.1f} s")
    return 1 if failed or missing_shots or not results else 0


if __name__ == "__main__":
    sys.exit(main())
