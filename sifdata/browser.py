"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
commands on file descriptor 3, replies on 4, NUL-separated JSON), with no driver library: the
viewer's screenshots and its browser tests use it.

Chromium is found from ``SIF_CHROMIUM`` or on the PATH (``chromium``, Debian's package;
``chromium-browser``; ``google-chrome``). :class:`BrowserUnavailable` says how to install it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserUnavailable(RuntimeError):
    """No Chromium to run."""


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or stopped answering."""


def find_chromium() -> str:
    configured = os.environ.get("SIF_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise BrowserUnavailable(f"SIF_CHROMIUM={configured} is not a file")
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailable(
        "no Chromium found (tried SIF_CHROMIUM, " + ", ".join(CANDIDATES) + "): install one, e.g. "
        "`apt-get install chromium` on Debian, or set SIF_CHROMIUM to its path"
    )


class Browser:
    """One headless Chromium with one page. Use as a context manager.

    ``console`` collects the page's console errors and uncaught exceptions (as text), so that a
    test can assert there were none.
    """

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.console: list[str] = []
        self._next_id = 0
        self._buffer = b""
        self._profile = tempfile.TemporaryDirectory(prefix="sif-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's descriptors are 3 and 4
            import fcntl

            # Moved out of the way first: a pipe end may itself be descriptor 3 or 4.
            reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)  # os.dup2 leaves the copies open across exec
            os.dup2(writing, 4)

        arguments = [
            find_chromium(),
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile.name}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            arguments.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self._process = subprocess.Popen(
            arguments,
            # The child keeps what preexec_fn dup2'ed onto 3 and 4 only if descriptors are not
            # closed after it; the pipes' own ends are close-on-exec, so nothing else leaks.
            preexec_fn=wire_pipes,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        try:
            targets = self._command("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self._session = self._command("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
            for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
                self.send(domain)
            self.send(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError("the browser closed its pipe (it exited)")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            self.console.append(f"uncaught: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console.append(
                "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.console.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())

    def _command(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._write(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == number:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._event(reply)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command to the page."""
        return self._command(method, self._session, **params)

    # ------------------------------------------------------------------ page

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll until ``expression`` is truthy in the page; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}")
            time.sleep(0.05)

    def open(self, url: str) -> None:
        """Load ``url`` afresh (a URL that differs from the current one only in its fragment would
        otherwise keep the page and its state)."""
        self.send("Page.navigate", url="about:blank")
        self.wait_for("location.href === 'about:blank' && document.readyState === 'complete'")
        self.send("Page.navigate", url=url)
        self.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'")

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if self._process.poll() is None:
                with contextlib.suppress(OSError):
                    self._write({"id": 0, "method": "Browser.close"})
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(5)
        finally:
            for descriptor in (self._to_browser, self._from_browser):
                with contextlib.suppress(OSError):
                    os.close(descriptor)
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def screenshot_page(url: str, out: str | Path, *, ready: str, width: int = 1280, height: int = 900) -> Path:
    """Open ``url`` headless, wait until the page says ``ready`` (a JavaScript expression), and
    save a PNG of it."""
    with Browser(width, height) as browser:
        browser.open(url)
        browser.wait_for(ready)
        browser.wait_for("Array.from(document.images).every(function (i) { return i.complete; })")
        return browser.screenshot(out)
