"""Attacked as a careless user or a hostile file would (issue 18): nothing deleted that the
program did not write, nothing lost, nothing hangs, nothing served or printed that should not be.
One test (or a few) per finding."""

from __future__ import annotations

import http.client
import io
import json
import os
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
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0  # a date past: at once
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


# ----------------------------------------------------------------------------- 5. files are opened as files


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's door)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def test_open_image_refuses_fifos_bombs_and_truncated_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sifdata.images import ImageRejected, open_image

    with pytest.raises(ImageRejected, match="is a FIFO, not a regular file"):
        open_image(_fifo(tmp_path / "pipe.jpg"))  # returns at once: a FIFO is never opened
    with pytest.raises(ImageRejected, match="decompression bomb"):
        open_image(bomb_png())
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageRejected, match="does not decode"):
        open_image(tmp_path / "cut.jpg")
    assert open_image(tmp_path / "cut.jpg", decode=False).size == (64, 64)  # the header alone is fine
    monkeypatch.setenv("SIF_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageRejected, match="64 x 64 pixels, over the budget of 1000"):
        open_image(buffer.getvalue())
    monkeypatch.setenv("SIF_MAX_IMAGE_BYTES", "100")
    with pytest.raises(ImageRejected, match="over the budget of 100"):
        open_image(tmp_path / "cut.jpg")


def test_a_fifo_and_a_bomb_among_a_benchmarks_images_are_those_samples_errors(tmp_path: Path) -> None:
    from sifeval.cli import app as sifeval_app
    from sifeval.mirrors import build_mirror

    mirror = build_mirror("vstar", tmp_path / "vstar")
    rows = [json.loads(line) for line in (mirror / "test_questions.jsonl").read_text().splitlines()]
    _fifo(mirror / rows[1]["image"])
    (mirror / rows[2]["image"]).write_bytes(bomb_png())
    out = tmp_path / "run"
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        args = ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--mode", "plain", "--no-cache"]
        result = runner.invoke(sifeval_app, [*args, "--model", f"openai:m@{server.base_url}", "--out", str(out)])
        assert len(server.requests) == len(rows) - 2  # every other sample was asked
    assert result.exit_code == 1 and "2 samples have no response" in _flat(result.output)
    lines = {json.loads(line)["id"]: json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()}
    fifo, bomb = (lines[str(rows[i]["question_id"])]["request_error"] for i in (1, 2))
    assert fifo["kind"] == "input" and "is a FIFO, not a regular file" in fifo["message"]
    assert bomb["kind"] == "input" and "decompression bomb" in bomb["message"]
    site = runner.invoke(sifeval_app, ["view", str(out), "--out", str(tmp_path / "site")])
    assert site.exit_code == 0, site.output
    from sifdata.viewer import read_data_file

    notes = " ".join(
        note for page in sorted((tmp_path / "site" / "data").glob("page-*.js")) for item in read_data_file(page)
        for note in item["notes"]
    )  # fmt: skip
    assert "is a FIFO, not a regular file" in notes and "decompression bomb" in notes


def test_a_fifo_and_a_bomb_in_a_build_or_an_import_are_rejects(tmp_path: Path, tiny_depth_model: Path) -> None:
    from published_sif50k import write_release

    from sifdata.builder.pipeline import BuildConfig, build
    from sifdata.cli import app as sifdata_app
    from sifdata.sources import viscot

    source = tmp_path / "src"
    source.mkdir()
    rows = []
    for index in range(4):
        Image.new("RGB", (48 + index, 40), (index * 50, 90, 120)).save(source / f"{index}.png")
        rows.append({"question": f"How many {index}?", "bboxs": [[4, 4, 30, 30]], "answer": 1,
                     "image": f"{index}.png", "question_id": index})  # fmt: skip
    (source / "tally.json").write_text(json.dumps(rows))
    _fifo(source / "1.png")
    (source / "2.png").write_bytes(bomb_png())
    config = BuildConfig(source="tallyqa", source_path=source / "tally.json", depth_model=str(tiny_depth_model),
                         depth_device="cpu")  # fmt: skip
    report = build(config, tmp_path / "built", progress=False)
    assert (report.records, report.rejects) == (2, 2)
    reasons = " ".join((tmp_path / "built" / "work").joinpath(name).read_text()
                       for name in ("source_rejects.jsonl",) if (tmp_path / "built" / "work" / name).is_file())  # fmt: skip
    reasons += " ".join(p.read_text() for p in (tmp_path / "built").rglob("*rejects*.jsonl"))
    assert "FIFO" in reasons and "decompression bomb" in reasons

    benchmark = Path(__file__).parent / "data" / "viscot_benchmark"
    published = json.loads((benchmark / "benchmark" / "gqa.json").read_text())[:3]
    sizes = {e.img_path: (e.width, e.height) for e in viscot.read_detection(benchmark / "benchmark_det" / "gqa.jsonl").values()}  # fmt: skip
    release = write_release(tmp_path / "rel", published, sizes)
    images = sorted((tmp_path / "rel" / "images" / "gqa").glob("*.jpg"))
    _fifo(images[0])
    data = images[1].read_bytes()
    images[1].write_bytes(data[: len(data) // 2])  # a truncated JPEG: its header is fine
    result = runner.invoke(sifdata_app, ["import", str(release), "--out", str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    assert "imported 1 records" in _flat(result.output) and "2 rejected" in _flat(result.output)
    rejects = (tmp_path / "imported" / "work" / "source_rejects.jsonl").read_text()
    assert "FIFO" in rejects and "does not decode" in rejects
    validated = runner.invoke(sifdata_app, ["validate", str(tmp_path / "imported")])
    assert validated.exit_code == 0, validated.output  # nothing bad got in


def test_validate_names_a_record_whose_image_is_a_bomb(tmp_path: Path, demo_build: Path) -> None:
    import shutil

    import pyarrow.parquet as pq

    from sifdata.shards import shard_files
    from sifdata.validate import validate_folder

    folder = tmp_path / "build"
    shutil.copytree(demo_build, folder)
    shard = shard_files(folder)[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"] = {"bytes": bomb_png(), "path": None}
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    report = validate_folder(folder)
    assert not report.ok
    assert any(issue.where == rows[0]["id"] and "decompression bomb" in issue.reason for issue in report.errors)


# ----------------------------------------------------------------------------- 7. secrets redacted


def test_a_key_in_the_model_spec_is_written_nowhere(tmp_path: Path) -> None:
    from sifdata.secrets import redact
    from sifeval.cli import app as sifeval_app
    from sifeval.mirrors import build_mirror

    secret = "sk-SPEC-SECRET-424242"
    assert redact(f"openai:m@http://h/v1?api_key={secret}&timeout=5") == "openai:m@http://h/v1?api_key=***&timeout=5"
    assert redact("http://user:hunter2@host/v1") == "http://***@host/v1" and redact("monkey=5") == "monkey=5"
    mirror = build_mirror("vstar", tmp_path / "vstar")
    out = tmp_path / "run"
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        spec = f"openai:m@{server.base_url}?api_key={secret}"
        args = ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--mode", "plain", "--no-cache"]
        result = runner.invoke(sifeval_app, [*args, "--model", spec, "--out", str(out), "--limit", "3"])
        assert result.exit_code == 0, result.output
        assert server.headers[0]["authorization"] == f"Bearer {secret}"  # the key did its job
    assert runner.invoke(sifeval_app, ["view", str(out), "--out", str(tmp_path / "site")]).exit_code == 0
    report = tmp_path / "report.html"
    assert runner.invoke(sifeval_app, ["report", str(out), "--format", "html", "--out", str(report)]).exit_code == 0
    written = [
        p for p in (out, tmp_path / "site", report) for p in ([p] if p.is_file() else p.rglob("*")) if p.is_file()
    ]
    assert len(written) > 10
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert "api_key=***" in json.loads((out / "results.json").read_text())["model"]["spec"]
    bad = runner.invoke(sifeval_app, [*args, "--model", f"openai:m?api_key={secret}", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and secret not in bad.output and "api_key=***" in _flat(bad.output)


# ----------------------------------------------------------------------------- 8. caches and shards that heal or say so


def test_a_damaged_response_cache_entry_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sifdata.hub import sif_home
    from sifeval.cli import app as sifeval_app
    from sifeval.mirrors import build_mirror

    mirror = build_mirror("vstar", tmp_path / "vstar")
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        args = ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--mode", "plain", "--limit", "4"]
        model = ["--model", f"openai:m@{server.base_url}"]
        assert runner.invoke(sifeval_app, [*args, *model, "--out", str(tmp_path / "a")]).exit_code == 0
        entries = sorted((sif_home() / "response-cache").rglob("*.json"))
        assert len(entries) == 4 and len(server.requests) == 4
        entries[0].write_text('{"text": "<answer>A</ans')  # cut short
        entries[1].write_bytes(b"\xff\xfe\x00")  # not even text
        again = runner.invoke(sifeval_app, [*args, *model, "--out", str(tmp_path / "b")])
        assert again.exit_code == 0, again.output
        assert len(server.requests) == 6  # the two damaged entries asked again, the rest from the cache
    warned = [r.getMessage() for r in caplog.records if "is not JSON" in r.message or "is unreadable" in r.message]
    assert len(warned) == 2 and any(str(entries[0]) in message for message in warned)  # named
    assert all(json.loads(entry.read_text())["text"] == "<answer>A</answer>" for entry in entries)  # healed


def test_damaged_shards_are_named_by_validate_and_refused_by_load_dataset(tmp_path: Path, demo_build: Path) -> None:
    import shutil

    import sifdata
    from sifdata.cli import app as sifdata_app
    from sifdata.hub import DatasetCorrupt
    from sifdata.shards import shard_files

    folder = tmp_path / "build"
    shutil.copytree(demo_build, folder)
    assert len(sifdata.load_dataset(folder)) == 56  # checked once, then remembered
    first, second = shard_files(folder)[:2]
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed
    second.write_bytes(bytes(data))
    with pytest.raises(DatasetCorrupt, match=rf"{second.name} differs from its checksum .*verify=False"):
        sifdata.load_dataset(folder)
    first.write_bytes(first.read_bytes()[:1000])  # cut short
    result = runner.invoke(sifdata_app, ["validate", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output and "shard 1" in _flat(result.output)
    from sifdata.validate import validate_folder

    issues = [(i.where, i.check) for i in validate_folder(folder).errors if "unreadable parquet file" in i.reason]
    assert issues == [(f"data/{first.name}", "shard")]


# ----------------------------------------------------------------------------- 9. printing never crashes


def test_markup_and_tex_in_data_are_printed_as_text(tmp_path: Path) -> None:
    from sifdata.cli import app as sifdata_app
    from sifeval.cli import app as sifeval_app
    from sifeval.report import report_rows, to_html

    weird = tmp_path / "odd[/]name"
    result = runner.invoke(sifdata_app, ["validate", str(weird)])
    assert result.exit_code == 1 and "odd[/]name" in _flat(result.output) and "Traceback" not in result.output
    rows = {
        "benchmark": "vstar",
        "metrics": {"score": 50.0, "category/$\\badmacro{x}$": 40.0, "category/[bold]x[/]": 10.0},
        "model": {"spec": "$\\badmacro{m}$"},
        "mode": "plain",
        "protocol": "generation",
        "n": 2,
        "parse_failure_rate": 0.0,
        "request_error_rate": 0.0,
    }
    html = to_html(report_rows([rows], with_published=False))
    assert "badmacro" in html
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(json.dumps(rows))
    printed = runner.invoke(sifeval_app, ["report", str(tmp_path / "r"), "--no-published"])
    assert printed.exit_code == 0 and "[bold]x[/]" in printed.output
