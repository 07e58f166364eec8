// The attention views of numpy_transformer.viz.html. Reads the JSON block #nt-data and draws:
//   head view  - one layer: query tokens left, key tokens right, a line per head with opacity = weight;
//   model view - every layer x head as a small heatmap; click one to enlarge it.
// Tokens are always written with textContent (never as HTML). Nothing is fetched.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("nt-data").textContent);
  var ROW = 20;                 // px per token row in the head view (matches .nt-token height)
  var LINES_WIDTH = 280;        // px between the two token columns
  var FAINTEST = 3;             // with no token in focus, lines below 3/255 (about 0.01) are not drawn
  var CHUNK = 64;               // segments per stroked path: long paths of crossing lines rasterize slowly
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a"];
  var root = document.getElementById("nt-view");

  data.sets.forEach(function (set) {            // base64 -> one byte per weight, (L, H, T, S) in C order
    var text = atob(set.weights), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    set.q = bytes;
    set.T = set.queries.length;
    set.S = set.keys.length;
  });
  var state = {set: 0, layer: 0, mode: data.view === "model" ? "model" : "head", focus: null, pinned: false,
               heads: [], cell: null};

  function color(h) { return COLORS[h % COLORS.length]; }
  function rgb(hex) { return [1, 3, 5].map(function (i) { return parseInt(hex.slice(i, i + 2), 16); }); }
  function current() { return data.sets[state.set]; }
  function level(set, l, h, t, s) { return set.q[((l * set.heads + h) * set.T + t) * set.S + s]; }
  function fmt(q) { return (q / data.levels).toFixed(2); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function count(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }
  function shown(token) { return token === "" ? "\u2205" : token; }  // an empty token shows as the empty set

  // ------------------------------------------------------------------ skeleton
  var title = el("h1", "nt-title", data.title);
  var controls = el("div", "nt-controls");
  var setLabel = el("label", null, "Attention "), setSelect = el("select", "nt-set-select");
  setLabel.appendChild(setSelect);
  data.sets.forEach(function (set, i) { var o = el("option", null, set.name); o.value = i; setSelect.appendChild(o); });
  var layerLabel = el("label", "nt-layer-label", "Layer "), layerSelect = el("select", "nt-layer-select");
  layerLabel.appendChild(layerSelect);
  var modes = el("span", "nt-modes");
  var headButton = el("button", null, "Head view"), modelButton = el("button", null, "Model view");
  headButton.type = modelButton.type = "button";
  headButton.dataset.mode = "head";
  modelButton.dataset.mode = "model";
  modes.appendChild(headButton);
  modes.appendChild(modelButton);
  if (data.sets.length < 2) setLabel.classList.add("nt-hidden");
  controls.appendChild(setLabel);
  controls.appendChild(layerLabel);
  controls.appendChild(modes);
  var description = el("div", "nt-description");
  var heads = el("div", "nt-heads");
  var status = el("div", "nt-status");
  status.setAttribute("aria-live", "polite");
  var headPanel = el("div", "nt-lines nt-head-view");
  var queries = el("div", "nt-column nt-queries"), keys = el("div", "nt-column nt-keys");
  var canvas = el("canvas", "nt-canvas");
  headPanel.appendChild(queries);
  headPanel.appendChild(canvas);
  headPanel.appendChild(keys);
  var modelPanel = el("div", "nt-model-view");
  var grid = el("div", "nt-grid"), enlarged = el("div", "nt-enlarged nt-hidden");
  modelPanel.appendChild(grid);
  modelPanel.appendChild(enlarged);
  var bar = el("div", "nt-bar");               // stays in view while a long sentence scrolls
  [controls, description, heads, status].forEach(function (n) { bar.appendChild(n); });
  [title, bar, headPanel, modelPanel].forEach(function (n) { root.appendChild(n); });

  // ------------------------------------------------------------------ head view
  function buildHeadView() {
    var set = current();
    layerSelect.textContent = "";
    for (var l = 0; l < set.layers; l++) {
      var o = el("option", null, "layer " + l + " of " + set.layers);
      o.value = l;
      layerSelect.appendChild(o);
    }
    state.layer = Math.min(state.layer, set.layers - 1);
    layerSelect.value = state.layer;
    if (state.heads.length !== set.heads) {
      state.heads = [];
      for (var h = 0; h < set.heads; h++) state.heads.push(true);
    }
    heads.textContent = "";
    heads.appendChild(el("span", null, "Heads (click to toggle, double-click for one):"));
    state.heads.forEach(function (on, h) {
      var b = el("button", "nt-head", String(h));
      b.type = "button";
      b.style.borderColor = color(h);
      b.style.background = color(h);
      b.style.color = "#fff";
      b.title = "head " + h;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.addEventListener("click", function () { state.heads[h] = !state.heads[h]; refreshHeads(); drawLines(); });
      b.addEventListener("dblclick", function () {
        state.heads = state.heads.map(function (_, i) { return i === h; });
        refreshHeads();
        drawLines();
      });
      heads.appendChild(b);
    });
    [["all", true], ["none", false]].forEach(function (pair) {
      var b = el("button", "nt-small", pair[0]);
      b.type = "button";
      b.addEventListener("click", function () {
        state.heads = state.heads.map(function () { return pair[1]; });
        refreshHeads();
        drawLines();
      });
      heads.appendChild(b);
    });
    queries.textContent = "";
    keys.textContent = "";
    set.queries.forEach(function (token, t) { queries.appendChild(tokenNode(token, "query", t)); });
    set.keys.forEach(function (token, s) { keys.appendChild(tokenNode(token, "key", s)); });
    state.focus = null;
    state.pinned = false;
    drawLines();
  }

  function refreshHeads() {
    var buttons = heads.querySelectorAll(".nt-head");
    for (var h = 0; h < buttons.length; h++) buttons[h].setAttribute("aria-pressed", state.heads[h] ? "true" : "false");
  }

  function tokenNode(token, side, index) {
    var node = el("div", "nt-token", shown(token));
    node.title = token;
    node.dataset.side = side;
    node.dataset.index = index;
    node.addEventListener("mouseenter", function () { if (!state.pinned) focus(side, index); });
    node.addEventListener("mouseleave", function () { if (!state.pinned) focus(null); });
    node.addEventListener("click", function () {
      var same = state.focus && state.focus.side === side && state.focus.index === index;
      state.pinned = !(state.pinned && same);
      focus(state.pinned ? side : null, index);
    });
    return node;
  }

  function focus(side, index) {
    state.focus = side ? {side: side, index: index} : null;
    var nodes = headPanel.querySelectorAll(".nt-token");
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i];
      n.classList.toggle("nt-focused", !!state.focus && n.dataset.side === side && Number(n.dataset.index) === index);
    }
    drawLines();
  }

  function drawLines() {
    var set = current(), l = state.layer, f = state.focus;
    var rows = Math.max(set.T, set.S), ratio = window.devicePixelRatio || 1;
    canvas.style.width = LINES_WIDTH + "px";
    canvas.style.height = rows * ROW + "px";
    canvas.width = Math.round(LINES_WIDTH * ratio);
    canvas.height = Math.round(rows * ROW * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, LINES_WIDTH, rows * ROW);
    // one device pixel: Chromium's fast path for thin lines (wider lines cost 10x more with thousands of them)
    ctx.lineWidth = f ? 2.5 : 1 / ratio;
    var faintest = f ? 1 : FAINTEST;
    var t0 = 0, t1 = set.T, s0 = 0, s1 = set.S;
    if (f && f.side === "query") { t0 = f.index; t1 = f.index + 1; }
    if (f && f.side === "key") { s0 = f.index; s1 = f.index + 1; }
    var drawn = 0, x0 = 4, x1 = LINES_WIDTH - 4, step = 0.6 * ROW / set.heads;
    for (var h = 0; h < set.heads; h++) {
      if (!state.heads[h]) continue;
      var dy = (h - (set.heads - 1) / 2) * step;   // each head's lines a little apart, so colours do not blend
      var buckets = {};                         // level -> [y0, y1, y0, y1, ...]: one path per opacity
      for (var t = t0; t < t1; t++) {
        var base = ((l * set.heads + h) * set.T + t) * set.S;
        for (var s = s0; s < s1; s++) {
          var q = set.q[base + s];
          if (q < faintest) continue;
          (buckets[q] || (buckets[q] = [])).push((t + 0.5) * ROW + dy, (s + 0.5) * ROW + dy);
        }
      }
      ctx.strokeStyle = color(h);
      for (var key in buckets) {
        var ys = buckets[key];
        ctx.globalAlpha = Number(key) / data.levels;
        for (var start = 0; start < ys.length; start += 2 * CHUNK) {
          ctx.beginPath();
          for (var i = start; i < Math.min(ys.length, start + 2 * CHUNK); i += 2) {
            ctx.moveTo(x0, ys[i]);
            ctx.lineTo(x1, ys[i + 1]);
          }
          ctx.stroke();
        }
        drawn += ys.length / 2;
      }
    }
    ctx.globalAlpha = 1;
    canvas.dataset.lines = drawn;
    canvas.dataset.layer = l;
    canvas.dataset.focus = f ? f.side + ":" + f.index : "";
    status.textContent = headStatus(set, l, f, drawn);
  }

  function headStatus(set, l, f, drawn) {
    if (!f) return "Layer " + l + ": " + count(drawn, "line") + " (weights below 0.01 left out). Hover over a token, or " +
      "click it to pin it, to see only its lines.";
    var parts = [];
    for (var h = 0; h < set.heads; h++) {
      if (!state.heads[h]) continue;
      var best = -1, bestQ = -1, n = f.side === "query" ? set.S : set.T;
      for (var j = 0; j < n; j++) {
        var q = f.side === "query" ? level(set, l, h, f.index, j) : level(set, l, h, j, f.index);
        if (q > bestQ) { bestQ = q; best = j; }
      }
      var other = f.side === "query" ? set.keys[best] : set.queries[best];
      parts.push("head " + h + ": " + shown(other) + " " + fmt(bestQ));
    }
    var token = f.side === "query" ? set.queries[f.index] : set.keys[f.index];
    var verb = f.side === "query" ? " looks most at " : " is looked at most by ";
    return "\u201c" + shown(token) + "\u201d" + verb + "(" + (parts.join("; ") || "no head selected") + ")";
  }

  // ------------------------------------------------------------------ model view
  function thumbSize(set) {
    var side = Math.max(36, Math.min(88, Math.floor(900 / set.heads) - 8));
    var tall = side * set.T / Math.max(set.T, set.S), wide = side * set.S / Math.max(set.T, set.S);
    return [Math.max(8, Math.round(wide)), Math.max(8, Math.round(tall))];
  }

  // One pixel per weight, white (0) to the head's colour (1). Given a smaller width x height (a thumbnail of many
  // tokens), each pixel shows the LARGEST weight of the block of cells it covers, so that a thin diagonal or a
  // single strong cell still shows (drawing every cell and letting the browser shrink it would drop rows).
  function paint(canvasNode, set, l, h, width, height) {
    var W = Math.min(set.S, width || set.S), Hgt = Math.min(set.T, height || set.T);
    canvasNode.width = W;
    canvasNode.height = Hgt;
    var ctx = canvasNode.getContext("2d"), image = ctx.createImageData(W, Hgt), c = rgb(color(h));
    var base = (l * set.heads + h) * set.T * set.S;
    for (var y = 0; y < Hgt; y++) {
      var t0 = Math.floor(y * set.T / Hgt), t1 = Math.max(t0 + 1, Math.floor((y + 1) * set.T / Hgt));
      for (var x = 0; x < W; x++) {
        var s0 = Math.floor(x * set.S / W), s1 = Math.max(s0 + 1, Math.floor((x + 1) * set.S / W)), q = 0;
        for (var t = t0; t < t1; t++) {
          for (var s = s0; s < s1; s++) q = Math.max(q, set.q[base + t * set.S + s]);
        }
        var w = q / data.levels, p = 4 * (y * W + x);
        image.data[p] = 255 - w * (255 - c[0]);
        image.data[p + 1] = 255 - w * (255 - c[1]);
        image.data[p + 2] = 255 - w * (255 - c[2]);
        image.data[p + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  function buildModelView() {
    var set = current(), size = thumbSize(set), ratio = window.devicePixelRatio || 1;
    grid.textContent = "";
    grid.style.gridTemplateColumns = "auto repeat(" + set.heads + ", " + size[0] + "px)";
    grid.appendChild(el("div", "nt-label", ""));
    for (var h = 0; h < set.heads; h++) grid.appendChild(el("div", "nt-label", "head " + h));
    for (var l = 0; l < set.layers; l++) {
      grid.appendChild(el("div", "nt-label nt-row-label", "layer " + l));
      for (h = 0; h < set.heads; h++) {
        var thumb = el("canvas", "nt-thumb");
        paint(thumb, set, l, h, Math.round(size[0] * ratio), Math.round(size[1] * ratio));
        thumb.style.width = size[0] + "px";
        thumb.style.height = size[1] + "px";
        thumb.dataset.layer = l;
        thumb.dataset.head = h;
        thumb.title = "layer " + l + ", head " + h + ": click to enlarge";
        thumb.addEventListener("click", enlargeFrom(l, h));
        grid.appendChild(thumb);
      }
    }
    status.textContent = count(set.layers, "layer") + " x " + count(set.heads, "head") + ": row t of each square is query token t, " +
      "column s is key token s (white 0, full colour 1" +
      (size[0] * ratio < set.S || size[1] * ratio < set.T ? "; a pixel shows the largest weight of the tokens it covers" : "") +
      "). Click a square to enlarge it.";
    if (state.cell && state.cell.layer < set.layers && state.cell.head < set.heads) enlarge(state.cell.layer, state.cell.head);
    else closeEnlarged();
  }

  function enlargeFrom(l, h) { return function () { enlarge(l, h); enlarged.scrollIntoView({block: "nearest"}); }; }

  function closeEnlarged() { state.cell = null; enlarged.classList.add("nt-hidden"); markSelected(); }

  function markSelected() {
    var thumbs = grid.querySelectorAll(".nt-thumb");
    for (var i = 0; i < thumbs.length; i++) {
      var d = thumbs[i].dataset;
      thumbs[i].classList.toggle("nt-selected", !!state.cell && Number(d.layer) === state.cell.layer &&
                                                Number(d.head) === state.cell.head);
    }
  }

  function enlarge(l, h) {
    var set = current();
    state.cell = {layer: l, head: h};
    markSelected();
    enlarged.textContent = "";
    enlarged.classList.remove("nt-hidden");
    var heading = el("h2", null, set.name + ", layer " + l + ", head " + h);
    var close = el("button", null, "close");
    close.type = "button";
    close.addEventListener("click", closeEnlarged);
    heading.appendChild(close);
    enlarged.appendChild(heading);
    var cell = Math.max(3, Math.min(28, Math.floor(640 / Math.max(set.T, set.S))));
    var probe = document.createElement("canvas").getContext("2d");
    probe.font = "12px " + getComputedStyle(document.body).fontFamily;
    var widest = function (tokens) {
      return Math.min(160, Math.max.apply(null, tokens.map(function (t) { return probe.measureText(shown(t)).width; })));
    };
    var left = widest(set.queries) + 10, top = widest(set.keys) + 10;
    var width = left + cell * set.S + 4, height = top + cell * set.T + 4, ratio = window.devicePixelRatio || 1;
    var big = el("canvas", "nt-big");
    big.style.width = width + "px";
    big.style.height = height + "px";
    big.width = Math.round(width * ratio);
    big.height = Math.round(height * ratio);
    big.dataset.layer = l;
    big.dataset.head = h;
    var ctx = big.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    var small = el("canvas");
    paint(small, set, l, h);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, left, top, cell * set.S, cell * set.T);
    ctx.fillStyle = "#1f2328";
    ctx.font = probe.font;
    var every = Math.max(1, Math.ceil(11 / cell));         // label every row while they fit, else every k-th
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (var t = 0; t < set.T; t += every) ctx.fillText(shown(set.queries[t]), left - 4, top + (t + 0.5) * cell, 156);
    for (var s = 0; s < set.S; s += every) {
      ctx.save();
      ctx.translate(left + (s + 0.5) * cell, top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(shown(set.keys[s]), 0, 0, 156);
      ctx.restore();
    }
    big.addEventListener("mousemove", function (event) {
      var box = big.getBoundingClientRect();
      var s = Math.floor((event.clientX - box.left - left) / cell), t = Math.floor((event.clientY - box.top - top) / cell);
      if (t < 0 || s < 0 || t >= set.T || s >= set.S) return;
      status.textContent = "layer " + l + ", head " + h + ": \u201c" + shown(set.queries[t]) + "\u201d \u2192 \u201c" +
        shown(set.keys[s]) + "\u201d " + fmt(level(set, l, h, t, s));
    });
    enlarged.appendChild(big);
  }

  // ------------------------------------------------------------------ wiring
  function render() {
    var set = current();
    description.textContent = set.description + (set.description ? " \u00b7 " : "") + count(set.T, "query token") +
      " and " + count(set.S, "key token") + ", " + count(set.layers, "layer") + ", " + count(set.heads, "head") +
      " (numbered from 0)";
    headButton.setAttribute("aria-pressed", state.mode === "head" ? "true" : "false");
    modelButton.setAttribute("aria-pressed", state.mode === "model" ? "true" : "false");
    headPanel.classList.toggle("nt-hidden", state.mode !== "head");
    heads.classList.toggle("nt-hidden", state.mode !== "head");
    layerLabel.classList.toggle("nt-hidden", state.mode !== "head");
    modelPanel.classList.toggle("nt-hidden", state.mode !== "model");
    if (state.mode === "head") buildHeadView(); else buildModelView();
    root.dataset.mode = state.mode;
    root.dataset.ready = "true";
  }

  setSelect.addEventListener("change", function () { state.set = Number(setSelect.value); state.cell = null; render(); });
  layerSelect.addEventListener("change", function () {
    state.layer = Number(layerSelect.value);
    state.focus = null;
    state.pinned = false;
    focus(null);
  });
  [headButton, modelButton].forEach(function (b) {
    b.addEventListener("click", function () { state.mode = b.dataset.mode; render(); });
  });
  render();
})();
