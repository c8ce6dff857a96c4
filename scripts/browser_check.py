#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and check what a reader would see.

Driven through Chromium's DevTools protocol over a websocket (``websocket-client``, already in the lock file), so no
WebDriver is needed.  The book is served by ``http.server`` on 127.0.0.1 only, and Chromium's host resolver maps every
other host to "not found", so a page that tries to reach the network fails loudly instead of quietly working online.

For every ``*.html`` under the build (``_static`` and ``_sources`` excepted) it checks:

* no console error, uncaught exception, failed request or HTTP error status;
* no request to anything but the local server, and no element that loads a remote script, style sheet or image;
* every local ``href``/``src`` names a file of the build, and every ``#fragment`` an id of the target page;
* every image loaded (``naturalWidth > 0``), and a chapter page (built from a notebook) has at least one figure;
* on a page with math, MathJax typeset it (``mjx-container``) and reported no TeX error (``mjx-merror``).

It prints one row per page, saves screenshots of the introduction and of one results page, and exits 1 on any
failure (2 when it cannot run at all).

Usage: browser_check.py --html _build/html [--screenshots _build/screenshots] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

try:
    import websocket  # websocket-client
except ImportError:  # pragma: no cover - the lock file pins it
    sys.exit("browser_check: the 'websocket-client' package is missing (it is pinned in requirements-lock.txt)")

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
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
VIEWPORT = (1280, 900)
SCREENSHOT_MAX_HEIGHT = 7000
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

# Runs in the page once it has loaded: waits for MathJax's first typeset, fonts and images, then reports.
COLLECT_JS = r"""
(async () => {
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; }
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
      refs.push({tag: el.tagName.toLowerCase(), rel: el.getAttribute('rel') || '', attr, value: v, url});
    }
  }
  const imgs = Array.from(document.images).map(i => ({
    src: i.getAttribute('src') || '', ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth,
    content: !!i.closest('article, .bd-article, main')}));
  const mathSources = document.querySelectorAll('article .math, article script[type^="math/tex"]').length;
  const mjx = document.querySelectorAll('mjx-container').length;
  const merr = Array.from(document.querySelectorAll('mjx-merror')).map(
      e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5);
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id)
      .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.getAttribute('name')));
  return {title: document.title, href: location.href, refs, imgs, mathSources, mjx, merr,
          mathjax: (mj && mj.version) || null, ids,
          height: Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight)};
})()
"""


class CDPError(RuntimeError):
    pass


class CDP:
    """A minimal DevTools-protocol client: one browser websocket, flattened target sessions, buffered events."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def _recv(self, timeout: float) -> dict | None:
        self.ws.settimeout(max(timeout, 0.05))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        msg: dict = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._recv(deadline - time.monotonic())
            if m is None:
                continue
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error'].get('message')} {m['error'].get('data', '')}".strip())
                return m.get("result", {})
            self.events.append(m)
        raise CDPError(f"{method}: no answer within {timeout:.0f} s")

    def wait_event(self, method: str, session: str | None, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.events[seen:]:
                if m.get("method") == method and m.get("sessionId") == session:
                    return m
            seen = len(self.events)
            if time.monotonic() >= deadline:
                return None
            m = self._recv(min(0.5, deadline - time.monotonic()))
            if m is not None:
                self.events.append(m)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = self._recv(deadline - time.monotonic())
            if m is not None:
                self.events.append(m)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The browser cancels requests it no longer needs (a navigation away, a font MathJax did not use).
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = LocalServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen, str]:
    log = open(profile.parent / "chromium.log", "wb")
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
         "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode}; see {profile.parent / 'chromium.log'}")
        if port_file.is_file():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return proc, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 60 s")


def stop_chromium(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the process group this script started for chromium
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


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


_ID_RE = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")


class IdIndex:
    """The ids (and a[name]s) of each built HTML file, read from disk once."""

    def __init__(self):
        self.cache: dict[Path, set[str]] = {}

    def __call__(self, path: Path) -> set[str]:
        if path not in self.cache:
            import html

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


def screenshot(cdp: CDP, session: str, url: str, dest: Path) -> None:
    """Open ``url`` again, let MathJax and the images finish, and save the page (up to a maximum height) as PNG."""
    cdp.events.clear()
    cdp.send("Page.navigate", {"url": url}, session)
    cdp.wait_event("Page.loadEventFired", session, 30)
    out = cdp.send("Runtime.evaluate", {"expression": COLLECT_JS, "awaitPromise": True, "returnByValue": True},
                   session, timeout=60)
    height = out.get("result", {}).get("value", {}).get("height", VIEWPORT[1])
    height = max(VIEWPORT[1], min(int(height), SCREENSHOT_MAX_HEIGHT))
    dest.parent.mkdir(parents=True, exist_ok=True)
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": VIEWPORT[0], "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    cdp.drain(0.3)
    shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, session)
    dest.write_bytes(base64.b64decode(shot["data"]))
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False}, session)


_REFRESH_RE = re.compile(r"""<meta[^>]+http-equiv=["']refresh["'][^>]*content=["'][^"']*url=([^"']+)["']""", re.I)


def check_redirect(cdp: CDP, session: str, root: Path, base: str, page: str, target: str,
                   res: PageResult) -> PageResult:
    res.kind = "redirect"
    url = urllib.parse.urljoin(base + page, target)
    path, _ = local_target(root, base, url)
    if path is None or not path.is_file():
        res.failures.append(f"redirect target {target} does not exist")
        return res
    t0 = time.monotonic()
    cdp.send("Page.navigate", {"url": base + page}, session)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        href = cdp.send("Runtime.evaluate", {"expression": "location.href", "returnByValue": True}, session)
        if href["result"].get("value", "").split("#")[0] == url.split("#")[0]:
            break
        cdp.drain(0.1)
    else:
        res.failures.append(f"the browser did not follow the redirect to {target}")
    cdp.wait_event("Page.loadEventFired", session, 15)
    res.load_ms = int((time.monotonic() - t0) * 1000)
    res.links = (1, 0)
    cdp.events.clear()  # the target page is checked on its own
    return res


def check_page(cdp: CDP, session: str, root: Path, base: str, page: str, ids: IdIndex) -> PageResult:
    res = PageResult(page, "chapter" if is_notebook_page(root, page) else "page")
    refresh = _REFRESH_RE.search((root / page).read_text(encoding="utf-8", errors="replace")[:4000])
    if refresh:  # jupyter-book's index.html forwards to the root page: check that the browser gets there
        return check_redirect(cdp, session, root, base, page, refresh.group(1).strip(), res)
    cdp.events.clear()
    t0 = time.monotonic()
    nav = cdp.send("Page.navigate", {"url": base + page}, session)
    if nav.get("errorText"):
        res.failures.append(f"navigation failed: {nav['errorText']}")
        return res
    if cdp.wait_event("Page.loadEventFired", session, 30) is None:
        res.failures.append("no load event within 30 s")
        return res
    try:
        out = cdp.send("Runtime.evaluate", {"expression": COLLECT_JS, "awaitPromise": True, "returnByValue": True},
                       session, timeout=60)
    except CDPError as exc:
        res.failures.append(f"could not inspect the page: {exc}")
        return res
    res.load_ms = int((time.monotonic() - t0) * 1000)
    if "exceptionDetails" in out:
        res.failures.append(f"inspection script failed: {out['exceptionDetails'].get('text')}")
        return res
    info = out["result"]["value"]

    # Give late requests (fonts, lazily loaded MathJax components) a moment to report.
    cdp.drain(0.2)
    requests: dict[str, str] = {}
    for ev in cdp.events:
        if ev.get("sessionId") != session:
            continue
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            url = p["request"]["url"]
            requests[p["requestId"]] = url
            if not (url.startswith(base) or url.startswith(("data:", "blob:", "about:"))):
                res.remote += 1
                res.failures.append(f"remote request: {url}")
        elif method == "Network.responseReceived":
            status = p["response"]["status"]
            if status >= 400:
                res.failures.append(f"HTTP {status}: {p['response']['url']}")
        elif method == "Network.loadingFailed":
            url = requests.get(p["requestId"], "?")
            if not url.startswith(base) or not p.get("canceled"):
                res.failures.append(f"request failed ({p.get('errorText')}): {url}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            res.console += 1
            res.failures.append(f"console.{p['type']}: {text[:300]}")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            res.console += 1
            res.failures.append(f"uncaught exception: {str(text)[:300]}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            res.console += 1
            res.failures.append(f"console error: {p['entry'].get('text', '')[:300]} {p['entry'].get('url', '')}")

    # Links and resources.
    own_ids = set(info["ids"])
    checked = broken = 0
    for ref in info["refs"]:
        url = ref["url"]
        if url is None:
            broken += 1
            res.failures.append(f"unparsable {ref['attr']} on <{ref['tag']}>: {ref['value']!r}")
            continue
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("mailto", "javascript", "data", "blob", "about", "tel"):
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
    loaded = sum(1 for i in imgs if i["ok"])
    res.images = (loaded, len(imgs))
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

    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", default="_build/html", type=Path, help="the built book (default: _build/html)")
    ap.add_argument("--screenshots", default="_build/screenshots", type=Path, help="where screenshots go")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args(argv)

    root = args.html.resolve()
    if not (root / "index.html").is_file():
        print(f"browser_check: no built book at {root} (run `make book` first)", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"browser_check: chromium not found at {args.chromium}", file=sys.stderr)
        return 2
    pages = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if not p.relative_to(root).parts[0] in ("_static", "_sources", "_images")
    )
    shots: dict[str, Path] = {}
    args.screenshots.mkdir(parents=True, exist_ok=True)
    for old in args.screenshots.glob("*.png"):
        old.unlink()

    httpd, base = serve(root)
    tmp = Path(tempfile.mkdtemp(prefix="pags-browser-check-"))
    proc = None
    cdp = None
    results: list[PageResult] = []
    t_start = time.monotonic()
    try:
        proc, ws_url = start_chromium(args.chromium, tmp / "profile")
        cdp = CDP(ws_url)
        version = cdp.send("Browser.getVersion")
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", {}, session)
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True}, session)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False}, session)
        print(f"{version.get('product')} headless, serving {root} at {base}")
        ids = IdIndex()
        for page in pages:
            results.append(check_page(cdp, session, root, base, page, ids))
        # Screenshots: the introduction, and the first results chapter whose figures loaded.
        by_page = {r.page: r for r in results}
        shots[INTRO_PAGE] = args.screenshots / "intro.png"
        results_page = next((p for p in RESULTS_PAGES if p in by_page and by_page[p].images[0] > 0), None)
        if results_page:
            shots[results_page] = args.screenshots / "results.png"
        for page, dest in shots.items():
            if page in by_page:
                screenshot(cdp, session, base + page, dest)
    except (RuntimeError, CDPError, OSError, websocket.WebSocketException) as exc:
        print(f"browser_check: could not drive chromium: {exc}", file=sys.stderr)
        log = tmp / "chromium.log"
        if log.is_file():
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 2
    finally:
        if cdp is not None:
            cdp.close()
        if proc is not None:
            stop_chromium(proc)
        httpd.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    # The table.
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
    for r in failed:
        print(f"\n{r.page}:")
        for f in r.failures[:25]:
            print(f"  - {f}")
        if len(r.failures) > 25:
            print(f"  ... and {len(r.failures) - 25} more")
    for page, path in shots.items():
        print(f"screenshot of {page}: {path}" + ("" if path.is_file() else " (NOT WRITTEN)"))
    if len(shots) < 2:
        print("no chapter with figures is in this build: only the introduction was photographed")
    missing_shots = [p for p in shots.values() if not p.is_file()]
    if missing_shots:
        print("screenshots not written: " + ", ".join(map(str, missing_shots)))
    n_ok = len(results) - len(failed)
    print(f"\nbrowser: {n_ok} passed, {len(failed)} failed")
    print(f"browser check of {len(results)} pages finished in {time.monotonic() - t_start:.1f} s")
    return 1 if failed or missing_shots or not results else 0


if __name__ == "__main__":
    sys.exit(main())
