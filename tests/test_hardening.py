"""Attacked as a careless user or a hostile file would (issue 18): nothing deleted that the
program did not write, nothing lost, nothing hangs, nothing served or printed that should not be.
One test (or a few) per finding."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from PIL import Image
from typer.testing import CliRunner

from sifdata.viewer.site import OWNED_FILES, ForeignFiles, Panel, Picture, ViewItem, site_server, write_site

runner = CliRunner()


def _flat(output: str) -> str:
    return " ".join(output.split())


# ----------------------------------------------------------------------------- 1. write only what you own


def _items(count: int, colour: int = 0) -> list[ViewItem]:
    def picture(number: int) -> Picture:
        def make() -> Image.Image:
            return Image.new("RGB", (32, 24), (number * 40 % 256, colour, 90))

        return Picture(f"k{colour}x{number}", make)

    return [
        ViewItem(f"item-{n}", f"question {n}?", "cat", (Panel("run", "right"),), image=picture(n)) for n in range(count)
    ]


def test_a_site_never_deletes_or_overwrites_files_it_did_not_write(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "images").mkdir(parents=True)
    (dataset / "images" / "holiday.jpg").write_bytes(b"a user's photo")
    (dataset / "SIF-50K.json").write_text("[]")
    with pytest.raises(ForeignFiles, match=r"already holds files this viewer did not write .*--force"):
        write_site(_items(2), dataset, title="t", progress=False)
    assert sorted(p.name for p in dataset.rglob("*")) == ["SIF-50K.json", "holiday.jpg", "images"]  # untouched

    report = write_site(_items(2), dataset, title="t", progress=False, force=True)  # beside them
    assert report.items == 2 and (dataset / "index.html").is_file()
    again = write_site(_items(1, colour=7), dataset, title="t", progress=False)  # its own listing: no --force
    assert again.pictures_removed == 2  # the first site's two pictures, which it wrote
    assert (dataset / "images" / "holiday.jpg").read_bytes() == b"a user's photo"
    assert (dataset / "SIF-50K.json").read_text() == "[]"
    listed = {json.loads(line) for line in (dataset / OWNED_FILES).read_text().splitlines()}
    assert "images/holiday.jpg" not in listed and "index.html" in listed
    assert {p.name for p in (dataset / "images").glob("*.jpg")} == {"holiday.jpg", "k7x0.jpg"}


def test_a_foreign_file_where_the_site_would_write_is_refused_even_with_force(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "index.html").write_text("<h1>my page</h1>")
    with pytest.raises(ForeignFiles, match=r"index\.html exists and was not written by this viewer"):
        write_site(_items(1), folder, title="t", progress=False, force=True)
    assert (folder / "index.html").read_text() == "<h1>my page</h1>"


def test_a_killed_site_write_does_not_block_the_next(tmp_path: Path) -> None:
    folder = tmp_path / "site"

    def killed() -> object:
        yield from _items(9)  # one chunk of 8 is written (workers=1), then the write dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_site(killed(), folder, title="t", progress=False, workers=1)  # type: ignore[arg-type]
    assert len(list((folder / "images").glob("*.jpg"))) == 8  # listed before they were written
    report = write_site(_items(9), folder, title="t", progress=False, workers=1)
    assert (report.items, report.pictures_reused, report.pictures_written) == (9, 8, 1)


def test_a_site_written_by_the_previous_version_is_taken_over_with_its_own_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    write_site(_items(2), folder, title="t", progress=False)
    (folder / OWNED_FILES).unlink()  # as the viewer wrote sites before they listed their files
    (folder / "images" / "notes.jpg").write_bytes(b"mine")
    report = write_site(_items(1, colour=3), folder, title="t", progress=False)
    assert report.pictures_removed == 2 and (folder / "images" / "notes.jpg").read_bytes() == b"mine"


def test_view_commands_refuse_a_foreign_folder_in_one_line(tmp_path: Path, demo_build: Path) -> None:
    from sifdata.cli import app as sifdata_app

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("x")
    refused = runner.invoke(sifdata_app, ["view", str(demo_build), "--out", str(tmp_path / "out"), "--limit", "2"])
    assert refused.exit_code == 1 and "--force" in refused.output and "Traceback" not in refused.output
    forced = runner.invoke(
        sifdata_app, ["view", str(demo_build), "--out", str(tmp_path / "out"), "--limit", "2", "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "out" / "thesis.tex").read_text() == "x"


# ----------------------------------------------------------------------------- 6. serve the site, nothing else


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host} if host is not None else {}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_serve_answers_only_the_sites_own_files_to_its_own_host(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    (folder / ".ssh").mkdir(parents=True)
    (folder / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    write_site(_items(1), folder, title="t", progress=False, force=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("outside")
    (folder / "images" / "link.jpg").symlink_to(outside)
    server = site_server(folder, port=0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        own = f"127.0.0.1:{port}"
        status, body = _get(port, "/", own)
        assert status == 200 and b"<html" in body.lower()
        assert _get(port, "/images/k0x0.jpg", own)[0] == 200
        assert _get(port, "/data/manifest.js", f"localhost:{port}")[0] == 200
        for path in ("/.ssh/id_rsa", "/images/link.jpg", "/images/", "/data/", "/../secret.txt", "/%2e%2e/secret.txt"):
            status, body = _get(port, path, own)
            assert status == 404 and b"PRIVATE" not in body and b"outside" not in body, path
        assert _get(port, "/", f"attacker.example:{port}")[0] == 403  # DNS rebinding
        assert _get(port, "/", "127.0.0.1:1")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_a_folder_that_is_no_site(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("x")
    with pytest.raises(FileNotFoundError, match="holds no site written by this viewer"):
        site_server(tmp_path, port=0)


# ----------------------------------------------------------------------------- 2. one writer per run folder


def _hold_lock(folder: Path) -> subprocess.Popen[str]:
    """Another process holding ``folder``'s lock (it prints "held", then sleeps)."""
    code = (
        "import sys, time\n"
        "from sifdata.files import exclusive_lock\n"
        "with exclusive_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_busy_run_folder_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    from sifeval.cli import app as sifeval_app
    from sifeval.mirrors import build_mirror

    mirror = build_mirror("vstar", tmp_path / "vstar")
    out = tmp_path / "run"
    holder = _hold_lock(out)
    args = ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--mode", "plain", "--no-cache"]
    with ScriptedChatServer() as server:
        model = ["--model", f"openai:m@{server.base_url}", "--out", str(out)]
        try:
            refused = runner.invoke(sifeval_app, [*args, *model])
            assert refused.exit_code == 1 and f"in use by another process (pid {holder.pid})" in _flat(refused.output)
            assert not (out / "samples.jsonl").exists() and not server.requests
            for command in (["rescore", str(out)], ["merge", str(out), "--out", str(tmp_path / "m")]):
                (out / "results.json").write_text(json.dumps({"benchmark": "vstar", "protocol": "generation"}))
                busy = runner.invoke(sifeval_app, command)
                assert busy.exit_code == 1 and "in use by another process" in _flat(busy.output), command
                (out / "results.json").unlink()
        finally:
            holder.kill()
            holder.wait()
        done = runner.invoke(sifeval_app, [*args, *model])  # the kernel released the lock with the process
        assert done.exit_code == 0, done.output


def test_two_runs_on_one_folder_lose_nothing(tmp_path: Path) -> None:
    from sifeval.cli import app as sifeval_app
    from sifeval.mirrors import build_mirror

    mirror = build_mirror("vstar", tmp_path / "vstar")
    out = tmp_path / "run"
    with ScriptedChatServer(latency=lambda request: 0.15) as server:
        args = [
            "run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--mode", "plain", "--no-cache",
            "--model", f"openai:m@{server.base_url}?concurrency=1", "--out", str(out),
        ]  # fmt: skip
        first = subprocess.Popen([sys.executable, "-m", "sifeval.cli", *args], stderr=subprocess.PIPE, text=True)
        journal = out / "samples.jsonl"
        deadline = time.monotonic() + 60
        while not (journal.is_file() and journal.read_text().count("\n") >= 1):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.02)
        second = runner.invoke(sifeval_app, [*args, "--resume"])
        assert second.exit_code == 1 and f"pid {first.pid}" in _flat(second.output)
        assert first.wait(timeout=120) == 0
    lines = journal.read_text().splitlines()
    results = json.loads((out / "results.json").read_text())
    assert len(lines) == len({json.loads(line)["id"] for line in lines}) == results["n"] == 12
    assert len(server.requests) == 12  # every sample asked once


# ----------------------------------------------------------------------------- 4. deadlines, not only timeouts


class _TricklingServer:
    """A loopback HTTP server that answers one byte every ``every`` seconds: in the body after
    complete headers, or in the headers themselves."""

    def __init__(self, where: str, every: float = 0.2) -> None:
        import socket

        self.where, self.every = where, every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: object) -> None:
        import socket

        assert isinstance(connection, socket.socket)
        with connection:
            connection.recv(65536)  # the request (small)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
            if self.where == "body":
                connection.sendall(head)
                head = b""
            for byte in (head or b" " * 4000)[:4000]:
                if self.stop.is_set():
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(self.every)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_reply_is_cut_off_at_the_deadline(where: str) -> None:
    from sifdata.llm import ChatClient, ChatError, RetryPolicy

    server = _TricklingServer(where)
    outcome: dict[str, object] = {}

    def call() -> None:
        client = ChatClient("m", f"http://127.0.0.1:{server.port}/v1", timeout=1.0, retry=RetryPolicy(2, 0.01))
        try:
            client.complete([{"role": "user", "content": "hi"}])
        except ChatError as error:
            outcome["error"] = error

    try:
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(60)  # the trickle alone would take 800 s; a hang is a failure, not a slow pass
        assert not worker.is_alive(), "the client waited on a trickling server past its deadline"
    finally:
        server.close()
    error = outcome["error"]
    assert isinstance(error, ChatError) and error.transient and "1 s deadline" in error.reason


def test_retry_after_is_read_defensively() -> None:
    from datetime import datetime, timedelta
    from email.utils import format_datetime

    from sifdata.llm import RetryPolicy, retry_after_seconds

    assert [retry_after_seconds(v) for v in ("5", "0", "-5", "nan", "inf", "soon", None)] == [
        5.0, 0.0, None, None, None, None, None,
    ]  # fmt: skip
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < (retry_after_seconds(later) or 0) <= 120
    policy = RetryPolicy(3, base_delay=0.01, max_delay=30)
    assert policy.delay(1, 3600.0) == 30 and policy.delay(1, 0.0) == 0.0
    assert 0 <= policy.delay(1, float("nan")) <= 0.01 and 0 <= policy.delay(1, -5.0) <= 30


@pytest.mark.parametrize("header", ["-5", "nan", "Thu, 01 Jan 1970 00:00:00 GMT"])
def test_a_hostile_retry_after_still_retries(header: str) -> None:
    from sifdata.llm import ChatClient, RetryPolicy

    with ScriptedChatServer() as server:
        server.script("hello", [f"429@{header}", "text:fine"])
        client = ChatClient("m", server.base_url, retry=RetryPolicy(3, base_delay=0.01))
        assert client.complete([{"role": "user", "content": "hello"}]).text == "fine"
        assert len(server.requests) == 2
