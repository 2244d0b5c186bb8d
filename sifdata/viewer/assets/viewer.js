/* The SIF viewer: pages through items with filters; an item shows its image with every focus
   step's boxes drawn in order (step number and depth), the ground truth dashed, the depth image,
   and each panel's fields. Data arrives as scripts calling SIFVIEW.receive (see site.py), so the
   page works from disk. Text from the data is only ever set as text, never parsed as HTML. */
"use strict";
(function () {
  var CARDS_PER_SCREEN = 60;
  var COLOURS = ["#ff1744", "#2979ff", "#ffab00", "#d500f9", "#00b8d4", "#ff6d00", "#76ff03", "#f50057"];
  var SVG = "http://www.w3.org/2000/svg";
  var state = { manifest: null, pages: {}, waiting: {}, shown: [], screen: 0, filters: {}, words: [], current: null };

  window.SIFVIEW = {
    receive: function (kind, first, second) {
      if (kind === "manifest") {
        state.manifest = first;
        start();
      } else if (kind === "page") {
        state.pages[first] = second;
        var callbacks = state.waiting[first] || [];
        delete state.waiting[first];
        callbacks.forEach(function (callback) { callback(null); });
      }
    }
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attributes[key]; } else { node.setAttribute(key, attributes[key]); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function svg(tag, attributes) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attributes).forEach(function (key) {
      if (key === "text") { node.textContent = attributes[key]; } else { node.setAttribute(key, attributes[key]); }
    });
    return node;
  }

  function slug(text) { return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, ""); }

  function badge(status, prefix) {
    return el("span", { "class": "badge status-" + slug(status), text: (prefix || "") + status });
  }

  function pad(number) { return ("00000" + number).slice(-5); }

  function loadPage(number, done) {
    if (state.pages[number]) { done(null); return; }
    if (state.waiting[number]) { state.waiting[number].push(done); return; }
    state.waiting[number] = [done];
    var script = document.createElement("script");
    script.src = "data/page-" + pad(number) + ".js";
    script.onerror = function () {
      var callbacks = state.waiting[number] || [];
      delete state.waiting[number];
      callbacks.forEach(function (callback) { callback("could not load " + script.src); });
    };
    document.body.appendChild(script);
  }

  // ------------------------------------------------------------------ list

  function counts(key) {
    var found = {};
    state.manifest.items.forEach(function (row) {
      var value = row.facets[key];
      if (value !== undefined) { found[value] = (found[value] || 0) + 1; }
    });
    return found;
  }

  function buildFilters() {
    var form = $("filters");
    state.manifest.facets.forEach(function (key) {
      var values = counts(key);
      var select = el("select", { "data-facet": key, "aria-label": key });
      select.appendChild(el("option", { value: "", text: "all (" + state.manifest.items.length + ")" }));
      Object.keys(values).sort().forEach(function (value) {
        select.appendChild(el("option", { value: value, text: value + " (" + values[value] + ")" }));
      });
      var preset = (state.manifest.preset || {})[key];
      if (preset !== undefined && values[preset]) {
        select.value = preset;
        state.filters[key] = preset;
      }
      select.addEventListener("change", function () {
        state.filters[key] = select.value;
        refilter();
      });
      form.insertBefore(el("label", { text: key + " " }, [select]), form.lastElementChild);
    });
    var timer = null;
    $("search").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        state.words = $("search").value.toLowerCase().split(/\s+/).filter(Boolean);
        refilter();
      }, 150);
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
  }

  function matches(row) {
    var keys = Object.keys(state.filters);
    for (var i = 0; i < keys.length; i++) {
      var wanted = state.filters[keys[i]];
      if (wanted && row.facets[keys[i]] !== wanted) { return false; }
    }
    for (var j = 0; j < state.words.length; j++) {
      if (row.text.indexOf(state.words[j]) < 0) { return false; }
    }
    return true;
  }

  function computeShown() {
    state.shown = [];
    state.manifest.items.forEach(function (row, index) { if (matches(row)) { state.shown.push(index); } });
  }

  function refilter() {
    computeShown();
    state.screen = 0;
    renderList();
  }

  function card(index) {
    var row = state.manifest.items[index];
    var picture = row.thumb
      ? el("img", { src: row.thumb, alt: "", loading: "lazy" })
      : el("div", { "class": "no-image", text: "no image" });
    var badges = el("div", {}, row.status.map(function (status, side) {
      return badge(status, row.status.length > 1 ? "AB".charAt(side) + ": " : "");
    }));
    return el("a", { "class": "card", href: "#/item/" + index, "data-index": String(index) }, [
      picture,
      el("div", { "class": "body" }, [
        badges,
        el("div", { "class": "meta", text: row.category + " \u00b7 " + row.id }),
        el("p", { "class": "question", text: row.q })
      ])
    ]);
  }

  function renderList() {
    var total = state.manifest.items.length;
    var screens = Math.max(1, Math.ceil(state.shown.length / CARDS_PER_SCREEN));
    state.screen = Math.min(state.screen, screens - 1);
    $("count").textContent = state.shown.length + " of " + total + " items";
    var cards = $("cards");
    cards.textContent = "";
    state.shown.slice(state.screen * CARDS_PER_SCREEN, (state.screen + 1) * CARDS_PER_SCREEN)
      .forEach(function (index) { cards.appendChild(card(index)); });
    $("screen-label").textContent = "screen " + (state.screen + 1) + " of " + screens;
    $("previous-screen").disabled = state.screen === 0;
    $("next-screen").disabled = state.screen >= screens - 1;
    document.body.setAttribute("data-ready", "list");
  }

  // ------------------------------------------------------------------ one item

  // Pictures are shown at a size fitted to a box in screen pixels, whatever their own size (a
  // 16 px icon is scaled up, a 60 x 2400 strip down); boxes are drawn in the image's frame on top,
  // clipped to it, and their labels are HTML at a fixed screen size.
  function fitted(size, maxWidth, maxHeight) {
    var scale = Math.min(maxWidth / size[0], maxHeight / size[1]);
    return [Math.max(1, Math.round(size[0] * scale)), Math.max(1, Math.round(size[1] * scale))];
  }

  function stage(src, alt, size, maxWidth, maxHeight) {
    var shown = fitted(size, Math.min(maxWidth, window.innerWidth * 0.88), maxHeight);
    var node = el("div", { "class": "stage", style: "width:" + shown[0] + "px;height:" + shown[1] + "px" },
      [el("img", { src: src, alt: alt, width: String(shown[0]), height: String(shown[1]) })]);
    return node;
  }

  function rect(kind, box, width, height, extra) {
    var attributes = {
      "class": kind, x: box[0] * width, y: box[1] * height,
      width: Math.max(0, box[2] - box[0]) * width, height: Math.max(0, box[3] - box[1]) * height
    };
    Object.keys(extra || {}).forEach(function (key) { attributes[key] = extra[key]; });
    return svg("rect", attributes);
  }

  // A label's place: outside its box where there is room (above, below, then beside it), never on
  // another label; inside the box's corner only when nothing else is free. Sizes are estimated in
  // screen pixels (11 px bold text, 16 px lines), so placement needs no layout pass.
  var LABEL_HEIGHT = 18, CHAR_WIDTH = 7, LABEL_PAD = 10;

  function overlaps(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }

  function placeLabel(box, text, stageWidth, stageHeight, placed, boxes) {
    var w = text.length * CHAR_WIDTH + LABEL_PAD, h = LABEL_HEIGHT;
    var x1 = box[0] * stageWidth, y1 = box[1] * stageHeight, x2 = box[2] * stageWidth, y2 = box[3] * stageHeight;
    var candidates = [
      [x1, y1 - h], [x1, y2], [x2 - w, y1 - h], [x2 - w, y2], [x2, y1], [x1 - w, y1], [x2, y2 - h], [x1 - w, y2 - h]
    ];
    for (var shift = 0; shift < 6; shift++) {
      candidates.push([x1, y1 - h - shift * h], [x1, y2 + shift * h]);
    }
    var clampX = function (x) { return Math.min(Math.max(x, 0), Math.max(0, stageWidth - w)); };
    var clampY = function (y) { return Math.min(Math.max(y, 0), Math.max(0, stageHeight - h)); };
    var own = { x: x1, y: y1, w: Math.max(1, x2 - x1), h: Math.max(1, y2 - y1) };
    for (var i = 0; i < candidates.length; i++) {
      var spot = { x: clampX(candidates[i][0]), y: clampY(candidates[i][1]), w: w, h: h };
      var free = !overlaps(spot, own) && placed.every(function (other) { return !overlaps(spot, other); })
        && boxes.every(function (other) { return !overlaps(spot, other); });
      if (free) { return spot; }
    }
    for (var j = 0; j < candidates.length; j++) {  // nothing wholly free: at least never on a label
      var fallback = { x: clampX(candidates[j][0]), y: clampY(candidates[j][1]), w: w, h: h };
      if (placed.every(function (other) { return !overlaps(fallback, other); })) { return fallback; }
    }
    return { x: clampX(x1), y: clampY(y1), w: w, h: h };
  }

  function overlay(node, size, truth, steps) {
    var width = size[0], height = size[1];
    var stageWidth = parseFloat(node.style.width) || width, stageHeight = parseFloat(node.style.height) || height;
    var layer = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none" });
    var placed = [];
    var boxes = [];
    steps.forEach(function (step) {
      step.forEach(function (focus) {
        var b = focus.box;
        boxes.push({ x: b[0] * stageWidth, y: b[1] * stageHeight, w: Math.max(1, (b[2] - b[0]) * stageWidth),
          h: Math.max(1, (b[3] - b[1]) * stageHeight) });
      });
    });
    var boxIndex = 0;
    steps.forEach(function (step, stepIndex) {
      var colour = COLOURS[stepIndex % COLOURS.length];
      step.forEach(function (focus) {
        layer.appendChild(rect("focus-box", focus.box, width, height, { "data-step": String(stepIndex + 1), stroke: colour }));
        var label = String(stepIndex + 1) + (focus.depth === null ? "" : " \u00b7 d " + focus.depth.toFixed(2));
        // the box itself counts as "own" by identity: the placement tests it first
        var spot = placeLabel(focus.box, label, stageWidth, stageHeight, placed, boxes.filter(function (other, index) {
          return index !== boxIndex;
        }));
        boxIndex += 1;
        placed.push(spot);
        node.appendChild(el("span", {
          "class": "box-label", "data-step": String(stepIndex + 1),
          style: "left:" + spot.x + "px;top:" + spot.y + "px;background:" + colour, text: label
        }));
      });
    });
    // the ground truth last: drawn over the steps, dashed, never hidden under them
    truth.forEach(function (box) { layer.appendChild(rect("truth-box", box, width, height)); });
    node.appendChild(layer);
  }

  var NO_RESPONSE = { "request error": 1, "not in this run": 1 };

  function legend(truth, panel) {
    var steps = panel ? panel.steps : [];
    var lines = steps.map(function (step, index) {
      var depths = step.map(function (f) { return f.depth === null ? "?" : f.depth.toFixed(3); }).join(", ");
      return el("div", {}, [
        el("span", { "class": "swatch", style: "background:" + COLOURS[index % COLOURS.length] }),
        document.createTextNode("step " + (index + 1) + ": " + step.length + " box" + (step.length === 1 ? "" : "es") +
          (step.length ? ", depth " + depths : ""))
      ]);
    });
    if (truth.length) {
      lines.unshift(el("div", {}, [el("span", { "class": "swatch", style: "background:#00e676" }),
        document.createTextNode("ground truth (dashed): " + truth.length + " box" + (truth.length === 1 ? "" : "es"))]));
    }
    if (panel && NO_RESPONSE[panel.status]) {
      lines.push(el("div", { text: "no response to read boxes from" }));
    } else if (panel && !steps.length) {
      lines.push(el("div", { text: "no focus step read from this response" }));
    }
    if (steps.length) { lines.push(el("div", { "class": "hint", text: "d: stated depth, lower = closer" })); }
    return el("div", { "class": "legend" }, lines);
  }

  function figure(item, panel, caption) {
    if (!item.image || !item.size) {
      return el("figure", { "class": "image" }, [el("figcaption", { text: caption }),
        el("p", { "class": "notes", text: "no image (see the notes above)" }), legend(item.truth, panel)]);
    }
    var wide = item.panels.length > 1 ? 420 : 560;  // two runs side by side share the width
    var node = stage(item.image, item.question, item.size, wide, 600);
    overlay(node, item.size, item.truth, panel ? panel.steps : []);
    return el("figure", { "class": "image" }, [el("figcaption", { text: caption }), node, legend(item.truth, panel)]);
  }

  function panelBox(panel) {
    var rows = [];
    rows.push(el("dt", { text: "status" }), el("dd", {}, [badge(panel.status)]));
    if (panel.score !== null) { rows.push(el("dt", { text: "score" }), el("dd", { text: String(panel.score) })); }
    panel.fields.forEach(function (pair) {
      rows.push(el("dt", { text: pair[0] }), el("dd", { text: pair[1] }));
    });
    var crops = (panel.crops || []).map(function (crop, index) {
      return el("figure", { "class": "crop" }, [
        el("figcaption", { text: "zoom " + (index + 1) }), stage(crop.image, "zoom " + (index + 1), crop.size, 200, 200)]);
    });
    if (crops.length) {
      rows.push(el("dt", { text: "what the model was sent back" }), el("dd", { "class": "crops" }, crops));
    }
    return el("section", { "class": "panel" }, [el("h3", { text: panel.label }), el("dl", {}, rows)]);
  }

  function renderItem(item, index) {
    var node = $("item");
    node.textContent = "";
    node.setAttribute("data-id", item.id);
    node.appendChild(el("h2", { text: item.question }));
    node.appendChild(el("div", { "class": "meta", text: item.category + " \u00b7 " + item.id }));
    item.notes.forEach(function (note) { node.appendChild(el("p", { "class": "notes", text: note })); });
    var figures = el("div", { "class": "figures" });
    if (item.panels.length) {
      item.panels.forEach(function (panel) { figures.appendChild(figure(item, panel, panel.label)); });
    } else {
      figures.appendChild(figure(item, null, "image"));
    }
    (item.more_images || []).forEach(function (more, index) {
      figures.appendChild(el("figure", { "class": "more" }, [
        el("figcaption", { text: "image " + (index + 2) + " of " + (item.more_images.length + 1) }),
        stage(more.image, "image " + (index + 2), more.size, 360, 400)]));
    });
    if (item.depth) {
      figures.appendChild(el("figure", { "class": "depth" }, [el("figcaption", { text: item.depth_caption }),
        stage(item.depth, "depth image", item.depth_size || item.size || [1, 1], 360, 400)]));
    }
    node.appendChild(figures);
    node.appendChild(el("div", { "class": "panels" }, item.panels.map(panelBox)));
    var position = state.shown.indexOf(index);
    $("item-position").textContent = position >= 0
      ? (position + 1) + " of " + state.shown.length + " shown"
      : "not among the filtered items";
    $("previous-item").disabled = position <= 0;
    $("next-item").disabled = position < 0 || position >= state.shown.length - 1;
    document.body.setAttribute("data-ready", "item:" + index);
  }

  function showItem(index) {
    var row = state.manifest.items[index];
    if (!row) {
      $("item").textContent = "no item " + index + " in this site";
      $("item-position").textContent = "";
      $("previous-item").disabled = true;
      $("next-item").disabled = true;
      document.body.setAttribute("data-ready", "error");
      return;
    }
    state.current = index;
    document.body.setAttribute("data-ready", "loading");
    loadPage(row.page, function (error) {
      if (state.current !== index) { return; }
      if (error) {
        $("item").textContent = "";
        $("item").appendChild(el("p", { "class": "error", text: error }));
        document.body.setAttribute("data-ready", "error");
        return;
      }
      renderItem(state.pages[row.page][index % state.manifest.page_size], index);
    });
  }

  function step(offset) {
    var position = state.shown.indexOf(state.current);
    var next = state.shown[position + offset];
    if (position >= 0 && next !== undefined) { location.hash = "#/item/" + next; }
  }

  function route() {
    var match = /^#\/item\/(\d+)$/.exec(location.hash);
    $("list-view").hidden = !!match;
    $("item-view").hidden = !match;
    if (match) {
      showItem(parseInt(match[1], 10));
    } else {
      var position = state.current === null ? -1 : state.shown.indexOf(state.current);
      if (position >= 0) { state.screen = Math.floor(position / CARDS_PER_SCREEN); }
      state.current = null;
      renderList();
    }
  }

  function start() {
    document.title = state.manifest.title;
    $("title").textContent = state.manifest.title;
    $("subtitle").textContent = state.manifest.subtitle || "";
    buildFilters();
    $("previous-screen").addEventListener("click", function () { state.screen -= 1; renderList(); });
    $("next-screen").addEventListener("click", function () { state.screen += 1; renderList(); });
    $("previous-item").addEventListener("click", function () { step(-1); });
    $("next-item").addEventListener("click", function () { step(1); });
    document.addEventListener("keydown", function (event) {
      if (state.current === null || event.target.tagName === "INPUT") { return; }
      if (event.key === "ArrowLeft") { step(-1); }
      if (event.key === "ArrowRight") { step(1); }
      if (event.key === "Escape") { location.hash = "#/"; }
    });
    window.addEventListener("hashchange", route);
    computeShown();
    route();
  }
})();
