"""Drive the book's live widgets in a real JupyterLab, in headless Chromium, offline.

Shared by ``tests/test_lab.py`` (every control of every widget moved, nothing may break) and
``benchmarks/lab.py`` (how long a reader waits for the new figure). Nothing here asserts: it
starts the server, opens a chapter, runs it, moves controls the way a reader does and returns
what happened, with the redraw latency measured inside the page.

- :class:`LabServer` runs ``jupyter lab`` from this Python's environment on 127.0.0.1 (a free
  port, a token, no browser) over a temporary copy of the notebooks, with its own config,
  settings, workspace and runtime folders, so nothing is written into the repository or the
  user's Jupyter setup. Its kernels inherit the environment it is given (``GRADLAB_FAST``);
  ``MPLBACKEND`` and ``GRADLAB_STATIC`` are removed. :meth:`LabServer.stop` shuts every kernel
  down and kills the server and anything it started, also after a failure.
- :func:`launch_browser` starts Debian's Chromium with the flags tests/test_site.py uses.
- :class:`ChapterPage` opens one notebook in JupyterLab with every request to anything but the
  server refused and recorded, collects console errors, page errors, failed responses and every
  error or stderr message of the kernel, runs all cells, lists the ``.gradlab-widget`` boxes and
  moves their controls (:meth:`ChapterPage.act`).

How a redraw is timed (in the page, on ``performance.now()``'s clock): from the ``timeStamp``
of the reader's input event (the key press on a slider handle, the change of a dropdown, the
click on Run) until the widget's figure ``<img>`` has a new ``src`` and that image is decoded
(``img.decode()``): ``latency_ms``, the first new picture the reader sees. ``src_ms`` stops when
the ``src`` is set, ``painted_ms`` at the animation frame after decoding, ``final_ms`` when the
move's last picture is decoded (a widget may send a refined second one). A move is over when the
kernel has gone idle for every message sent since the input, every picture it sent back (widget
updates with binary buffers) is in the page and decoded, and nothing has changed for 100 ms.
Between moves, :meth:`ChapterPage.restore_defaults` puts a widget's controls back to their
defaults through the kernel (bookkeeping, not a reader's move, not timed).
"""
from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
# Headless and quiet: no background requests, which this machine's closed network would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}

# JupyterLab user settings for a quiet, deterministic session: every notebook cell kept in the DOM
# (no virtual scrolling, so every widget can be found), no news, no update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


class LabError(RuntimeError):
    """The server or the page could not be brought to the state asked for."""


# ----------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------


class LabServer:
    """``jupyter lab`` over a temporary copy of ``notebooks`` (a context manager).

    ``fast`` sets ``GRADLAB_FAST=1`` for the kernels (True), removes it (False), or leaves the
    caller's environment as it is (None).
    """

    def __init__(self, notebooks: Path = NOTEBOOKS, *, fast: bool | None = True,
                 python: str | Path = sys.executable, start_timeout: float = 90.0):
        self.notebooks = Path(notebooks)
        self.fast = fast
        self.python = Path(python)
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.url = ""  # http://127.0.0.1:PORT/

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "LabServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def root(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "notebooks"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in {"MPLBACKEND", "GRADLAB_STATIC", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH",
                            "JUPYTER_PREFER_ENV_PATH", "JUPYTER_TOKEN", "JUPYTER_PORT"}}
        if self.fast is True:
            env["GRADLAB_FAST"] = "1"
        elif self.fast is False:
            env.pop("GRADLAB_FAST", None)
        assert self.tmp is not None
        env.update(JUPYTER_CONFIG_DIR=str(self.tmp / "config"), JUPYTER_DATA_DIR=str(self.tmp / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.tmp / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"),
                   IPYTHONDIR=str(self.tmp / "ipython"), PYTHONUNBUFFERED="1")
        return env

    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="gradlab-lab-"))
        shutil.copytree(self.notebooks, self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        for name in ("config", "data", "runtime", "workspaces", "ipython"):
            (self.tmp / name).mkdir()
        for plugin, values in LAB_SETTINGS.items():
            path = self.tmp / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        jupyter = self.python.parent / "jupyter"
        cmd = [str(jupyter) if jupyter.exists() else str(self.python), *([] if jupyter.exists() else ["-m", "jupyter"]),
               "lab", "--no-browser", "--ip=127.0.0.1", "--port=0", "--port-retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
               # a server whose caller died without stopping it goes away by itself
               "--ServerApp.shutdown_no_activity_timeout=600"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.tmp / "server.log", "w")
        self.proc = subprocess.Popen(cmd, env=self.environment(), cwd=self.root, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        info = self.tmp / "runtime" / f"jpserver-{self.proc.pid}.json"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if info.exists():
                try:
                    self.url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}/"
                    self.api("api/status")
                    return
                except (ValueError, KeyError, OSError):
                    pass
            time.sleep(0.25)
        raise LabError(f"jupyter lab did not answer within {self.start_timeout:g} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Shut every kernel down, stop the server and whatever it started, remove the copy."""
        proc, self.proc = self.proc, None
        if proc is not None:
            children = []
            try:
                import psutil

                children = psutil.Process(proc.pid).children(recursive=True)
            except Exception:
                pass
            if proc.poll() is None:
                try:
                    self.shutdown_kernels(timeout=10)
                except Exception:
                    pass
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait(timeout=10)
            for child in children:  # kernels run in their own sessions: end them one by one
                try:
                    if child.is_running():
                        child.kill()
                except Exception:
                    pass
            _kill_group(proc.pid)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.tmp is not None and not os.environ.get("GRADLAB_KEEP_LAB"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------------
    def log(self, start: int = 0) -> str:
        """The server's output (its kernels' stderr included) from character ``start`` on."""
        if self.tmp is None or not (self.tmp / "server.log").exists():
            return ""
        return (self.tmp / "server.log").read_text(errors="replace")[start:]

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with _DIRECT.open(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, timeout: float = 30) -> None:
        """Stop every session and kernel (between chapters: frees the CPU and memory)."""
        for s in self.api("api/sessions", timeout=timeout):
            self.api(f"api/sessions/{s['id']}", "DELETE", timeout=timeout)
        for k in self.api("api/kernels", timeout=timeout):
            self.api(f"api/kernels/{k['id']}", "DELETE", timeout=timeout)

    def chapter_url(self, notebook: str) -> str:
        # a workspace of its own, reset: no tab restored from an earlier page
        self._pages = getattr(self, "_pages", 0) + 1
        ws = f"gradlab-{self._pages}"
        return f"{self.url}lab/workspaces/{ws}/tree/{notebook}?reset&token={self.token}"


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def launch_browser(playwright):
    """Debian's Chromium, headless, with the flags above (every browser test launches it this way)."""
    if not CHROMIUM.exists():
        raise LabError("Debian's Chromium is missing: run `apt-get install -y chromium` (as root), "
                       "or use `make test`, which installs it.")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------

# Installed in every page before JupyterLab loads: the widget inspector and the redraw timer.
PAGE_JS = r"""
(() => {
  const W = {kernelErrors: [], kernelStderr: [], armed: null, panel: null, kernel: null};
  window.__gradlab = W;
  const QUIET_MS = 100;  // a move is over only after this long without a new picture
  const widgets = () => Array.from(document.querySelectorAll('.gradlab-widget'));
  const controlsOf = root => Array.from(root.querySelectorAll('.widget-slider, .widget-dropdown'));
  const runButtonOf = root => Array.from(root.querySelectorAll('button'))
      .find(b => b.textContent.trim() === 'Run' || b.getAttribute('title') === 'Run') || null;
  const figureOf = root => root.querySelector('img.gradlab-figure, .gradlab-figure img');
  const statusOf = root => root.querySelector('.gradlab-status');
  const titleOf = root => { const b = root.querySelector('.widget-html-content b, b');
                            return b ? b.textContent.trim() : ''; };
  const shown = el => !!el && getComputedStyle(el).display !== 'none';
  function sliderState(c) {
    const target = c.querySelector('.noUi-target');
    const api = target && target.noUiSlider;
    const handle = c.querySelector('[role=slider]');
    let atMin = false, atMax = false;
    if (api) {
      const v = +api.get(true), r = api.options.range, span = Math.abs(r.max - r.min) || 1;
      atMin = v <= r.min + 1e-9 * span; atMax = v >= r.max - 1e-9 * span;
    }
    // The value as the reader sees it: the slider's readout, or a label beside it (log sliders).
    const readout = c.querySelector('.widget-readout');
    let text = shown(readout) ? readout.textContent.trim() : '';
    const next = c.nextElementSibling;
    if (!text && next && next.classList.contains('widget-label')) text = next.textContent.trim();
    return {kind: 'slider', text, value: (handle ? handle.getAttribute('aria-valuetext') : '') + '|' + text,
            atMin, atMax};
  }
  function controlState(c) {
    const label = c.querySelector('.widget-label');
    const sel = c.querySelector('select');
    const base = {label: label ? label.textContent.trim() : ''};
    if (sel) {
      const options = Array.from(sel.options).map(o => o.textContent.trim());
      return {...base, kind: 'dropdown', options, index: sel.selectedIndex,
              text: options[sel.selectedIndex] || '', value: String(sel.selectedIndex) + '|' + sel.value};
    }
    return {...base, ...sliderState(c)};
  }
  W.describe = () => widgets().map((root, i) => {
    const img = figureOf(root), status = statusOf(root), run = runButtonOf(root);
    return {index: i, title: titleOf(root), status: status ? status.textContent.trim() : null,
            src: img ? (img.getAttribute('src') || '') : null,
            hasImg: !!img, run: !!run, runDisabled: run ? run.disabled : null,
            controls: controlsOf(root).map(controlState)};
  });
  W.controlValue = (wi, ci) => controlState(controlsOf(widgets()[wi])[ci]);
  W.outputProblems = () => {
    const out = [];
    document.querySelectorAll('.jp-OutputArea-output').forEach(el => {
      const mime = el.getAttribute('data-mime-type') || '';
      const text = el.textContent || '';
      if (mime === 'application/vnd.jupyter.error' || (mime === 'application/vnd.jupyter.stderr'
          && /Traceback|Error:/.test(text)) || /Error displaying widget|Failed to (load|render) model/.test(text))
        out.push(text.slice(0, 2000));
    });
    return out;
  };
  // The kernel: every error and stderr message, and which of the messages sent are finished.
  W.attach = (panel) => {
    W.panel = panel;
    const kernel = panel.sessionContext.session.kernel;
    W.kernel = kernel;
    kernel.anyMessage.connect((_, args) => {
      const msg = args.msg, type = msg.header.msg_type;
      if (args.direction === 'send') {
        if (W.armed && (type === 'comm_msg' || type === 'execute_request')) W.armed.sent.add(msg.header.msg_id);
        return;
      }
      if (msg.channel !== 'iopub') return;
      const parent = msg.parent_header && msg.parent_header.msg_id;
      // A widget update with binary buffers, caused by what we sent: a new picture on its way.
      if (type === 'comm_msg' && W.armed && W.armed.sent.has(parent) && (msg.buffers || []).length > 0)
        W.armed.updates += 1;
      if (type === 'error') W.kernelErrors.push(`${msg.content.ename}: ${msg.content.evalue}\n` +
                                                (msg.content.traceback || []).join('\n'));
      else if (type === 'stream' && msg.content.name === 'stderr') W.kernelStderr.push(msg.content.text);
      else if (type === 'status' && msg.content.execution_state === 'idle' && W.armed
               && parent && W.armed.sent.has(parent)) {
        W.armed.idle.add(parent); W.armed.tIdle = performance.now();
      }
    });
  };
  W.kernelStatus = () => (W.kernel ? W.kernel.status : 'unknown');
  // Arm the timer on widget `wi`: the next input event inside it starts the clock; every new
  // picture after it is recorded with the time its src was set and the time it was decoded.
  W.arm = (wi) => {
    if (W.armed) W.disarm();
    const root = widgets()[wi], img = figureOf(root), status = statusOf(root);
    const st = {t0: null, event: null, src0: img.getAttribute('src') || '', srcNow: img.getAttribute('src') || '',
                pictures: [], pending: 0, firstDecoded: null, firstPainted: null, lastDecoded: null,
                lastPainted: null, tLastMutation: null, tIdle: null, decodeErrors: 0, updates: 0,
                sent: new Set(), idle: new Set(), statusTexts: []};
    const types = ['keydown', 'pointerdown', 'mousedown', 'input', 'change', 'click'];
    const onEvent = ev => { if (st.t0 === null && root.contains(ev.target)) { st.t0 = ev.timeStamp; st.event = ev.type; } };
    types.forEach(t => window.addEventListener(t, onEvent, true));
    const decoded = (src, ok) => {
      st.pending -= 1;
      if (!ok) { st.decodeErrors += 1; return; }
      const t = performance.now();
      if (st.firstDecoded === null) {
        st.firstDecoded = t;
        requestAnimationFrame(() => { st.firstPainted = performance.now(); });
      }
      if (st.srcNow === src) {
        st.lastDecoded = t; st.lastPainted = null;
        requestAnimationFrame(() => { if (st.srcNow === src) st.lastPainted = performance.now(); });
      }
    };
    const imgObserver = new MutationObserver(() => {
      const src = img.getAttribute('src') || '';
      if (src === st.srcNow) return;
      st.srcNow = src; st.tLastMutation = performance.now();
      if (st.t0 === null) { st.src0 = src; return; }  // a late picture of something earlier
      if (!src) return;
      st.pictures.push(st.tLastMutation); st.pending += 1; st.lastPainted = null;
      img.decode().then(() => decoded(src, true), () => {
        if (img.getAttribute('src') !== src) decoded(src, false);  // replaced before it was shown
        else if (img.complete && img.naturalWidth) decoded(src, true);
        else {
          img.addEventListener('load', () => decoded(src, true), {once: true});
          img.addEventListener('error', () => decoded(src, false), {once: true});
        }
      });
    });
    imgObserver.observe(img, {attributes: true, attributeFilter: ['src']});
    const statusObserver = new MutationObserver(() => st.statusTexts.push(status.textContent.trim()));
    if (status) statusObserver.observe(status, {subtree: true, childList: true, characterData: true});
    st.cleanup = () => { imgObserver.disconnect(); statusObserver.disconnect();
                         types.forEach(t => window.removeEventListener(t, onEvent, true)); };
    W.armed = st;
    return st.src0;
  };
  const quiet = (st, ms) => st.pending === 0 && st.pictures.length >= st.updates
      && (st.pictures.length === 0 || st.lastPainted !== null)
      && performance.now() - Math.max(st.tIdle || 0, st.tLastMutation || 0, st.lastPainted || 0, st.t0 || 0) >= ms;
  // Settled: the kernel is idle for every message sent since the input, every picture it sent
  // back is in the page, the last one decoded and painted, and nothing changed for QUIET_MS
  // (widget messages are applied to the page asynchronously, possibly after the kernel's idle).
  W.settled = () => {
    const st = W.armed;
    if (!st || st.t0 === null || st.sent.size === 0) return false;
    for (const id of st.sent) if (!st.idle.has(id)) return false;
    return quiet(st, QUIET_MS);
  };
  // Run code in the kernel (not a reader's action: the harness puts controls back this way).
  W.execute = async (code) => {
    const st = W.armed;
    if (st && st.t0 === null) { st.t0 = performance.now(); st.event = 'kernel'; }
    const reply = await W.kernel.requestExecute({code, silent: false, store_history: false, allow_stdin: false}).done;
    return reply.content.status;
  };
  W.disarm = () => {
    const st = W.armed;
    if (!st) return null;
    st.cleanup();
    W.armed = null;
    const since = t => (t === null || t === undefined || st.t0 === null ? null : t - st.t0);
    return {event: st.event, sent: st.sent.size, updates: st.updates, pictures: st.pictures.length,
            decodeErrors: st.decodeErrors,
            src_ms: since(st.pictures.length ? st.pictures[0] : null), latency_ms: since(st.firstDecoded),
            painted_ms: since(st.firstPainted), final_ms: since(st.lastDecoded), idle_ms: since(st.tIdle),
            statusTexts: st.statusTexts};
  };
})();
"""

OPEN_JS = """async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  if (!panel.sessionContext.session || !panel.sessionContext.session.kernel) throw new Error('no kernel');
  window.__gradlab.attach(panel);
  return panel.context.path;
}"""

# Starts Run All Cells; window.__gradlab.runState says when it is over (a promise is not awaited
# across the wait, so a kernel that never answers becomes a timeout, not a hang).
RUN_ALL_JS = """() => {
  const W = window.__gradlab, app = window.jupyterapp, panel = W.panel;
  W.runState = null;
  app.shell.activateById(panel.id);
  app.commands.execute('notebook:run-all-cells').then(ok => {
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const missing = cells.map((c, i) => [i, c.model.executionCount]).filter(([i, n]) => n === null).map(([i]) => i);
    W.runState = {ok: !!ok, code_cells: cells.length, not_executed: missing};
  }, err => { W.runState = {ok: false, error: String(err)}; });
}"""


@dataclass
class Move:
    """One action on one widget and what the page saw."""

    chapter: str
    widget: str
    control: str  # the control's label, or "Run"
    action: str  # "ArrowRight", "End", "select 2", "click", "restore"
    before: str = ""
    after: str = ""
    changed: bool = False  # the control's value changed (a redraw was due)
    redrawn: bool = False  # the figure got a new picture
    pictures: int = 0  # new pictures shown (a widget may send a second, refined one)
    latency_ms: float | None = None  # input event → first new picture decoded: what the reader waits for
    src_ms: float | None = None  # input event → first new src set (kernel work and messages)
    painted_ms: float | None = None  # input event → the animation frame after that decoding
    final_ms: float | None = None  # input event → last new picture decoded
    idle_ms: float | None = None  # input event → kernel idle for the widget's messages
    status: str = ""
    wall_s: float = 0.0
    timed_out: bool = False
    detail: dict = field(default_factory=dict)


class ChapterPage:
    """One chapter opened in JupyterLab in a fresh browser context, offline."""

    def __init__(self, browser, lab: LabServer, notebook: str, *, load_timeout: float = 120.0):
        self.lab = lab
        self.notebook = notebook
        self.chapter = Path(notebook).stem
        self.external: list[str] = []
        self.errors: list[str] = []  # console errors, page errors, failed responses
        self.warnings: list[str] = []
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.add_init_script(PAGE_JS)
        self.context.route("**/*", functools.partial(self._route, lab.url))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)
        self.log_start = len(lab.log())
        try:
            self._open(load_timeout)
        except BaseException:
            self.close()
            raise

    def _open(self, load_timeout: float) -> None:
        notebook, lab = self.notebook, self.lab
        t0 = time.perf_counter()
        self.page.goto(lab.chapter_url(notebook), wait_until="domcontentloaded", timeout=load_timeout * 1e3)
        self.page.wait_for_function(
            """name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                         return !!(w && w.sessionContext && w.context && w.context.path.split('/').pop() === name); }""",
            arg=Path(notebook).name, timeout=load_timeout * 1e3)
        self.dismiss_dialogs()
        path = self.page.evaluate(OPEN_JS)
        if Path(path).name != Path(notebook).name:
            raise LabError(f"JupyterLab opened {path!r}, not {notebook!r}")
        self.load_s = time.perf_counter() - t0

    def _route(self, base: str, route) -> None:
        url = route.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text}")
        elif msg.type == "warning":
            self.warnings.append(msg.text)

    def close(self) -> None:
        try:
            self.context.close()
        except Exception:
            pass

    def dismiss_dialogs(self) -> list[str]:
        """Accept any modal dialog (kernel choice and the like); returns their texts."""
        seen = []
        dialogs = self.page.locator(".jp-Dialog")
        for _ in range(5):
            if not dialogs.count():
                break
            seen.append(dialogs.first.inner_text()[:200])
            self.page.locator(".jp-Dialog .jp-mod-accept").first.click()
            self.page.wait_for_timeout(300)
        return seen

    # -- running the chapter --------------------------------------------------------------------
    def run_all(self, timeout: float = 600.0) -> dict:
        """Run All Cells and wait until every code cell has run and the kernel is idle."""
        t0 = time.perf_counter()
        self.page.evaluate(RUN_ALL_JS)
        self.page.wait_for_function("() => window.__gradlab.runState !== null", timeout=timeout * 1e3, polling=250)
        result = self.page.evaluate("() => window.__gradlab.runState")
        self.page.wait_for_function("() => window.__gradlab.kernelStatus() === 'idle'", timeout=timeout * 1e3)
        result["seconds"] = time.perf_counter() - t0
        return result

    def wait_for_widgets(self, count: int, timeout: float = 60.0) -> list[dict]:
        """Wait until ``count`` widgets are shown and every live one has its first figure."""
        try:
            self.page.wait_for_function(
                """n => { const ws = window.__gradlab.describe();
                          return ws.length >= n && ws.every(w => w.run || (w.src && w.src.length > 0)); }""",
                arg=count, timeout=timeout * 1e3)
        except Exception as exc:
            if "Timeout" not in type(exc).__name__:
                raise
            raise LabError(f"{self.notebook}: expected {count} widgets, each live one with a figure, within "
                           f"{timeout:g} s; the page shows {self.describe()}; problems: {self.problems()}") from None
        return self.describe()

    def describe(self) -> list[dict]:
        return self.page.evaluate("() => window.__gradlab.describe()")

    def kernel_errors(self) -> list[str]:
        """Every error message of the kernel: the name, the message and the traceback's last frames."""
        out = []
        for e in self.page.evaluate("() => window.__gradlab.kernelErrors"):
            lines = ANSI.sub("", e).splitlines()
            out.append("\n".join(lines[:1] + (["..."] if len(lines) > 13 else []) + lines[1:][-12:]))
        return out

    def kernel_stderr(self) -> str:
        return "".join(self.page.evaluate("() => window.__gradlab.kernelStderr"))

    def output_problems(self) -> list[str]:
        return self.page.evaluate("() => window.__gradlab.outputProblems()")

    def problems(self) -> list[str]:
        """Everything that must not happen: tracebacks, kernel errors, console errors, requests out."""
        out = [f"kernel error: {e}" for e in self.kernel_errors()]
        stderr = self.kernel_stderr()
        if "Traceback" in stderr:
            out.append(f"traceback on the kernel's stderr: {stderr[-3000:]}")
        out += [f"output: {p}" for p in self.output_problems()]
        log = self.lab.log(self.log_start)
        if "Traceback" in log:
            out.append(f"traceback in the server's log (its kernels' stderr): {log[log.index('Traceback'):][:3000]}")
        out += self.errors
        out += [f"request to another site: {u}" for u in self.external]
        return out

    def new_problems(self) -> list[str]:
        """The problems not returned by an earlier call."""
        seen = self.__dict__.setdefault("_reported", set())
        fresh = [p for p in self.problems() if p not in seen]
        seen.update(fresh)
        return fresh

    # -- moving controls --------------------------------------------------------------------------
    def widget(self, index: int):
        return self.page.locator(".gradlab-widget").nth(index)

    def control(self, widget: int, control: int):
        return self.widget(widget).locator(".widget-slider, .widget-dropdown").nth(control)

    def value(self, widget: int, control: int) -> dict:
        return self.page.evaluate("([w, c]) => window.__gradlab.controlValue(w, c)", [widget, control])

    def act(self, widget: int, control: int | None, action: str, *, timeout: float = 120.0) -> Move:
        """Do ``action`` on a control of a widget (or press its Run button: ``control=None``) and wait
        for the redraw it causes.

        Actions: a key pressed on a slider's handle ("ArrowRight", "ArrowLeft", "Home", "End",
        "PageUp", "PageDown"); "select K" for a dropdown's K-th option; "click" for Run.
        """
        info = self.describe()[widget]
        label = "Run" if control is None else info["controls"][control]["label"]
        move = Move(self.chapter, info["title"], label, action)
        before = None if control is None else self.value(widget, control)
        move.before = "" if before is None else before["text"]
        self.page.evaluate("w => window.__gradlab.arm(w)", widget)
        t0 = time.perf_counter()
        try:
            if control is None:
                self.widget(widget).locator("button", has_text="Run").first.click()
            else:
                loc = self.control(widget, control)
                if action.startswith("select "):
                    loc.locator("select").select_option(index=int(action.split()[1]))
                else:
                    loc.locator("[role=slider]").press(action)
            after = None if control is None else self.value(widget, control)
            move.after = "" if after is None else after["text"]
            move.changed = control is None or after["value"] != before["value"]
            if move.changed:
                move.timed_out = not self._wait("() => window.__gradlab.settled()", timeout)
        finally:
            result = self.page.evaluate("() => window.__gradlab.disarm()") or {}
        self._record(move, result, widget, t0)
        if control is not None:  # a label beside a slider may be written by the kernel
            move.after = self.value(widget, control)["text"]
        return move

    def restore_defaults(self, widget: int, *, timeout: float = 120.0) -> Move:
        """Put every control of a widget back to its default, through the kernel (bookkeeping
        between the reader's moves, not one of them), and wait for the redraw it causes."""
        info = self.describe()[widget]
        move = Move(self.chapter, info["title"], "all controls", "restore")
        self.page.evaluate("w => window.__gradlab.arm(w)", widget)
        t0 = time.perf_counter()
        try:
            status = self.page.evaluate("code => window.__gradlab.execute(code)", RESTORE_PY % json.dumps(info["title"]))
            move.changed = status == "ok"
            if status != "ok":
                raise LabError(f"could not put {info['title']!r} back to its defaults: {status}; "
                               f"{self.kernel_errors()[-1:]}")
            move.timed_out = not self._wait("() => window.__gradlab.settled()", timeout)
        finally:
            result = self.page.evaluate("() => window.__gradlab.disarm()") or {}
        self._record(move, result, widget, t0)
        return move

    def _wait(self, predicate: str, timeout: float) -> bool:
        try:
            self.page.wait_for_function(predicate, timeout=timeout * 1e3, polling="raf")
            return True
        except Exception as exc:  # reported in the Move; the caller decides
            if "Timeout" not in type(exc).__name__ and "Timeout" not in str(exc):
                raise
            return False

    def _record(self, move: Move, result: dict, widget: int, t0: float) -> None:
        move.wall_s = time.perf_counter() - t0
        move.pictures = int(result.get("pictures") or 0)
        move.redrawn = move.pictures > 0
        for key in ("latency_ms", "src_ms", "painted_ms", "final_ms", "idle_ms"):
            setattr(move, key, result.get(key))
        move.detail = {k: result.get(k) for k in ("event", "sent", "updates", "decodeErrors", "statusTexts")}
        move.status = self.describe()[widget]["status"] or ""


# Run in the kernel by ChapterPage.restore_defaults: every live view with this title gets its
# controls' defaults back (a live one redraws once per control that changes).
RESTORE_PY = """
def _gradlab_restore(title):
    import gc
    from gradlab.interact import LiveView
    for view in [o for o in gc.get_objects() if isinstance(o, LiveView) and o.experiment.title == title]:
        for control in view.experiment.controls:
            widget = view.controls[control.name]
            if widget.value != control.default:
                widget.value = control.default
_gradlab_restore(%s)
del _gradlab_restore
"""


# ----------------------------------------------------------------------------------------------
# What the chapters should show
# ----------------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SHOW = re.compile(r"""gradlab\.widgets\.get\(\s*["']([\w.]+)["']\s*\)\s*\.show\(""")


def chapters(notebooks: Path = NOTEBOOKS) -> list[str]:
    return sorted(p.name for p in notebooks.glob("*.ipynb"))


def shown_experiments(notebook: Path) -> list[str]:
    """The registered experiments a chapter shows, in order (from its code cells)."""
    nb = json.loads(Path(notebook).read_text())
    names = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            names += SHOW.findall(src)
    return names


def step_key(state: dict) -> str:
    """The key for a one-step move of a slider: ArrowRight, or ArrowLeft at the top."""
    return "ArrowLeft" if state.get("atMax") else "ArrowRight"


def next_option(state: dict) -> int:
    return (state["index"] + 1) % len(state["options"])


def median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])

