"""The viewer in a real browser: headless Chromium (DevTools protocol over a pipe) opens the
site from disk, a filter is chosen, a sample opened; the rendered page is checked and
photographed. Needs Chromium: skipped on a machine without one, except where
``SIF_REQUIRE_BROWSER=1`` (CI, whose ``.ci/run`` installs it) makes its absence a failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from viewer_runs import LIMIT, viscot_run

from sifdata.browser import Browser, BrowserUnavailable, find_chromium
from sifdata.viewer.build import view_build
from sifeval.mirrors import build_mirror
from sifeval.view import view_runs


def _chromium() -> None:
    try:
        find_chromium()
    except BrowserUnavailable as error:
        if os.environ.get("SIF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SIF_REQUIRE_BROWSER=1 and {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def browser():
    _chromium()
    with Browser(1280, 900) as opened:
        yield opened


@pytest.fixture(scope="module")
def run_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("viewer")
    mirror = build_mirror("viscot", folder / "mirror")
    run = viscot_run(mirror, folder / "run", right=True, hostile=True, error=True)
    return view_runs([run], folder / "site", progress=False).index


def _ready(browser: Browser, state: str) -> None:
    browser.wait_for(f"document.body.getAttribute('data-ready') === {state!r}")


def _choose(browser: Browser, facet: str, value: str) -> None:
    """Pick a value in a filter's drop-down as a user does: set it, fire the change event."""
    selector = json.dumps(f'select[data-facet="{facet}"]')
    chosen = browser.evaluate(
        f"(function () {{ var s = document.querySelector({selector});"
        f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); return s.value; }})()"
    )
    assert chosen == value, f"{facet} has no option {value!r}"


def test_filter_open_a_sample_and_see_its_boxes(browser: Browser, run_site: Path, tmp_path: Path) -> None:
    browser.console.clear()
    browser.open(run_site.as_uri())
    _ready(browser, "list")
    assert browser.evaluate("document.getElementById('count').textContent") == f"{LIMIT} of {LIMIT} items"
    assert browser.evaluate("document.querySelectorAll('#cards .card').length") == LIMIT
    _choose(browser, "status", "right")
    assert browser.evaluate("document.getElementById('count').textContent") == f"1 of {LIMIT} items"
    assert browser.evaluate("document.querySelectorAll('#cards .card').length") == 1
    browser.evaluate("document.querySelector('#cards .card').click()")
    _ready(browser, "item:0")
    browser.wait_for("Array.from(document.images).every(function (i) { return i.complete && i.naturalWidth > 0; })")
    # the known chain: step 1 one box, step 2 two boxes; VisCoT's ground truth: one box
    assert browser.evaluate("document.querySelectorAll('#item .focus-box').length") == 3
    assert (
        browser.evaluate(
            "Array.from(document.querySelectorAll('#item .focus-box')).map(function (r) { return r.getAttribute('data-step'); }).join()"
        )
        == "1,2,2"
    )
    assert browser.evaluate("document.querySelectorAll('#item .truth-box').length") == 1
    labels = browser.evaluate(
        "Array.from(document.querySelectorAll('#item .box-label')).map(function (l) { return l.textContent; }).join('|')"
    )
    assert labels == "1 · d 0.40|2 · d 0.30|2 · d 0.60"
    # pictures fit a box in screen pixels (a tiny mirror image is scaled up, never beyond it)
    width, height = browser.evaluate(
        "(function () { var r = document.querySelector('#item figure.image .stage').getBoundingClientRect(); return [r.width, r.height]; })()"
    )
    assert max(width / 560, height / 600) == pytest.approx(1.0, abs=0.01)
    assert browser.evaluate("document.querySelector('#item .badge').textContent") == "right"
    assert browser.evaluate("document.getElementById('item-position').textContent") == "1 of 1 shown"
    shot = browser.screenshot(tmp_path / "sample.png")
    assert shot.stat().st_size > 10_000
    assert browser.console == []


def test_search_and_a_hostile_response_shown_as_text(browser: Browser, run_site: Path) -> None:
    browser.console.clear()
    browser.open(run_site.as_uri() + "#/")
    _ready(browser, "list")
    browser.evaluate(
        "var s = document.getElementById('search'); s.value = 'onerror'; s.dispatchEvent(new Event('input'))"
    )
    browser.wait_for("document.getElementById('count').textContent === '1 of 4 items'")
    browser.evaluate("document.querySelector('#cards .card').click()")
    _ready(browser, "item:1")
    text = browser.evaluate("document.getElementById('item').textContent")
    assert '<img src=x onerror="' in text  # the reply's markup, as text
    assert browser.evaluate("document.querySelectorAll('#item dd img').length") == 0
    assert browser.evaluate("document.body.getAttribute('data-pwned')") is None
    browser.evaluate("document.getElementById('next-item').click()")  # next within the filter: none
    assert browser.evaluate("document.getElementById('next-item').disabled") is True
    browser.evaluate("location.hash = '#/item/2'")
    _ready(browser, "item:2")
    assert "request error" in browser.evaluate("document.getElementById('item').textContent")
    assert browser.console == []


def test_the_build_site_draws_each_chain_and_loads_pages_on_demand(
    browser: Browser, demo_build: Path, tmp_path: Path
) -> None:
    site = view_build(demo_build, tmp_path / "site", progress=False)  # 56 records: two data pages
    browser.console.clear()
    browser.open(site.index.as_uri() + "#/item/55")
    _ready(browser, "item:55")  # on the second page, loaded only now
    assert browser.evaluate("document.querySelectorAll('script[src^=\\'data/page-\\']').length") == 1
    assert browser.evaluate("document.querySelectorAll('#item .focus-box').length") >= 1
    assert browser.evaluate("document.querySelectorAll('#item .truth-box').length") >= 1
    assert browser.evaluate("document.querySelector('#item figure.depth img') !== null")
    browser.evaluate("location.hash = '#/'")
    _ready(browser, "list")
    assert browser.evaluate("document.querySelectorAll('#cards .card').length") == 56
    _choose(browser, "source", "synthetic")
    count = browser.evaluate("document.getElementById('count').textContent")
    assert count == "45 of 56 items"  # the demo build: 11 photo questions, 45 synthetic scenes
    assert browser.console == []


def test_labels_never_hide_each_other_nor_the_box_they_name(browser: Browser, tmp_path: Path) -> None:
    """Steps whose boxes share a corner, and a last box smaller than its own label."""
    from PIL import Image

    from sifdata.viewer.site import FocusBox, Panel, Picture, ViewItem, write_site

    steps = (
        (FocusBox((0.0, 0.0, 1.0, 1.0), 0.5),),
        (FocusBox((0.2, 0.3, 0.7, 0.8), 0.41),),
        (FocusBox((0.2, 0.3, 0.5, 0.6), 0.33),),  # the same top-left corner as step 2
        (FocusBox((0.2, 0.3, 0.24, 0.33), 0.25),),  # the same corner again, smaller than a label
    )
    item = ViewItem(
        "x", "where?", "cat", (Panel("run", "right", (("target", "a"),), steps, 1.0),),
        image=Picture("img0", lambda: Image.new("RGB", (640, 480), (90, 120, 150))),
    )  # fmt: skip
    site = write_site([item], tmp_path / "site", title="labels", progress=False)
    browser.console.clear()
    browser.open(site.index.as_uri() + "#/item/0")
    _ready(browser, "item:0")
    rects = browser.evaluate(
        "Array.from(document.querySelectorAll('#item .box-label')).map(function (n) {"
        " var r = n.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    boxes = browser.evaluate(
        "Array.from(document.querySelectorAll('#item .focus-box')).map(function (n) {"
        " var r = n.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    assert len(rects) == len(boxes) == 4

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5

    assert not any(overlap(a, b) for i, a in enumerate(rects) for b in rects[i + 1 :])  # no label on a label
    assert not overlap(rects[3], boxes[3])  # the small last box is not covered by its own label
    assert browser.console == []


def test_a_zoom_agent_run_shows_each_zoom_and_its_crop(browser: Browser, tmp_path: Path) -> None:
    """``sifeval run --agent zoom`` then ``sifeval view``: the tool boxes drawn in order on the
    image, as a chain's focus steps are, and the crops the model was sent beside the transcript."""
    from sifeval.adapters import get_benchmark, load_samples
    from sifeval.agents import DEEPEYES
    from sifeval.runner import run
    from sifeval.scripted import ScriptedSIFServer
    from sifmodel.backends import load

    data = build_mirror("vstar", tmp_path / "vstar")
    sample = load_samples(get_benchmark("vstar"), data)[1]  # 288 x 288, the square at (81, 174)-(169, 262)
    zoom = '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": %s}}\n</tool_call>'
    script = {sample.question: [zoom % "[81, 174, 169, 262]" + zoom % "[0, 0, 10, 10]", zoom % "[90, 180, 160, 250]",
                                "<answer>B</answer>"]}  # fmt: skip
    with ScriptedSIFServer(script) as server:
        run(get_benchmark("vstar"), load(f"openai:zoomer@{server.base_url}"), "openai:zoomer", tmp_path / "run",
            data_dir=data, mode="plain", agent=DEEPEYES, progress=False, samples=[sample], cache=None)  # fmt: skip
    index = view_runs([tmp_path / "run"], tmp_path / "site", progress=False).index
    browser.console.clear()
    browser.open(index.as_uri())
    _ready(browser, "list")
    browser.evaluate("document.querySelector('#cards .card').click()")
    _ready(browser, "item:0")
    browser.wait_for("Array.from(document.images).every(function (i) { return i.complete && i.naturalWidth > 0; })")
    steps = browser.evaluate(
        "Array.from(document.querySelectorAll('#item .focus-box')).map(function (r) { return r.getAttribute('data-step'); }).join()"
    )
    assert steps == "1,2,3"  # three zooms, in the order the model asked for them
    assert browser.evaluate("document.querySelectorAll('#item .truth-box').length") == 1
    assert browser.evaluate("document.querySelectorAll('#item .crops figure').length") == 3
    assert browser.evaluate("document.querySelectorAll('#item .crops img').length") == 3
    captions = browser.evaluate(
        "Array.from(document.querySelectorAll('#item .crops figcaption')).map(function (c) { return c.textContent; }).join()"
    )
    assert captions == "zoom 1,zoom 2,zoom 3"
    assert "zoom on image 0: box [81, 174, 169, 262]" in browser.evaluate("document.getElementById('item').textContent")
    browser.screenshot(tmp_path / "zoom.png")
    assert browser.console == []
