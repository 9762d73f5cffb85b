// Watches the service's streams over /v1/stream ({"type": "watch"}) and shows, for every body,
// its skeleton, its current action per model (or "none") and a timeline of the last 30 s of
// actions per model. No build step, no dependencies.
"use strict";

const canvas = document.getElementById("skeleton");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const modelEl = document.getElementById("model");
const listEl = document.getElementById("bodies");
const COLOURS = ["#4cf", "#fc4", "#f6c", "#6f6", "#f84", "#a8f"];
const SVG = "http://www.w3.org/2000/svg";
const HISTORY_S = 30; // seconds of stream time a timeline shows
const TIMELINE = { width: 720, bar: 24, height: 40 }; // SVG user units, about CSS pixels

const state = {
  parents: [], // of the default model's layout
  layouts: {}, // layout name -> {joints, parents}
  models: new Map(), // served name -> {name, version, layout, labels, none_label, served_as}
  bodies: new Map(), // "stream/body" -> Body (see body())
  clocks: new Map(), // stream -> newest stream time seen (s)
  bounds: null,
  actionEvents: 0, // action_started / action_ended messages received
};
window.masksemLive = state; // inspected by the browser tests and handy in the console

function setStatus(text, kind) {
  statusEl.textContent = text;
  statusEl.dataset.state = kind;
}

function key(stream, body) { return `${stream}/${body}`; }

function streamUrl() {
  const url = new URL("v1/stream", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const apiKey = new URLSearchParams(window.location.search).get("api_key");
  if (apiKey) url.searchParams.set("api_key", apiKey);
  return url.toString();
}

// -- state ------------------------------------------------------------------------------------

function body(stream, id) {
  const k = key(stream, id);
  let b = state.bodies.get(k);
  if (!b) {
    // tracks: model -> {entries: [{label, start, end (null while open), confidence}], last}
    b = { stream, body: id, joints: null, layout: null, models: [], tracks: new Map() };
    state.bodies.set(k, b);
  }
  return b;
}

function track(b, model) {
  let t = b.tracks.get(model);
  if (!t) {
    t = { entries: [], prediction: null };
    b.tracks.set(model, t);
    if (!b.models.includes(model)) b.models.push(model);
  }
  return t;
}

function advance(stream, time) {
  if (Number.isFinite(time)) state.clocks.set(stream, Math.max(state.clocks.get(stream) ?? time, time));
}

// Whether a model's current action comes from action events (its card names a none label) or,
// for a model without one, from its window predictions.
function hasNone(model) {
  const m = state.models.get(model);
  return Boolean(m && m.none_label);
}

function openEntry(t) {
  const last = t.entries[t.entries.length - 1];
  return last && last.end === null ? last : null;
}

function actionStarted(msg) {
  for (const id of msg.bodies) {
    const t = track(body(msg.stream, id), msg.model);
    const open = openEntry(t);
    if (open) open.end = msg.start; // its end was lost (a slow page skips messages)
    t.entries.push({ label: msg.label, start: msg.start, end: null, confidence: msg.confidence });
  }
}

function actionEnded(msg) {
  for (const id of msg.bodies) {
    const t = track(body(msg.stream, id), msg.model);
    const entry = t.entries.find((e) => e.label === msg.label && e.start === msg.start);
    if (entry) {
      entry.end = msg.end;
      entry.confidence = msg.confidence;
    } else {
      // its start came before this page connected, or was lost: the end says it all
      t.entries.push({ label: msg.label, start: msg.start, end: msg.end, confidence: msg.confidence });
      t.entries.sort((a, b) => a.start - b.start);
    }
  }
}

function prediction(msg) {
  const t = track(body(msg.stream, msg.body), msg.model);
  t.prediction = msg;
  if (hasNone(msg.model)) return; // its actions come as events
  // no none label: the timeline is the runs of the shown label
  const at = msg.window.end;
  const open = openEntry(t);
  if (open && open.label === msg.label) return;
  if (open) open.end = at;
  t.entries.push({ label: msg.label, start: at, end: null, confidence: msg.probability });
}

function forget(k) {
  state.bodies.delete(k);
}

function prune() {
  for (const b of state.bodies.values()) {
    const from = (state.clocks.get(b.stream) ?? 0) - HISTORY_S;
    for (const t of b.tracks.values()) {
      t.entries = t.entries.filter((e) => e.end === null || e.end >= from);
    }
  }
}

// The label shown as a body's current action for ``model``, and its confidence.
function current(b, model) {
  const t = b.tracks.get(model);
  if (hasNone(model)) {
    const open = t && openEntry(t);
    return open ? { label: open.label, confidence: open.confidence, action: true }
      : { label: state.models.get(model).none_label, confidence: null, action: false };
  }
  if (!t || !t.prediction) return null;
  return { label: t.prediction.label, confidence: t.prediction.probability, action: true };
}

// -- drawing ----------------------------------------------------------------------------------

function updateBounds(bodies) {
  // Grow the view to fit what has been seen; a camera view: x to the sensor's left, y up.
  for (const b of bodies) {
    for (const [x, y] of b.joints) {
      if (x === 0 && y === 0) continue;
      const bb = state.bounds || { minX: x, maxX: x, minY: y, maxY: y };
      bb.minX = Math.min(bb.minX, x); bb.maxX = Math.max(bb.maxX, x);
      bb.minY = Math.min(bb.minY, y); bb.maxY = Math.max(bb.maxY, y);
      state.bounds = bb;
    }
  }
}

function project(x, y) {
  const b = state.bounds;
  const w = Math.max(b.maxX - b.minX, 0.5), h = Math.max(b.maxY - b.minY, 0.5);
  const scale = 0.8 * Math.min(canvas.width / w, canvas.height / h);
  const cx = (b.minX + b.maxX) / 2, cy = (b.minY + b.maxY) / 2;
  // Kinect x points to the sensor's left: mirror it so the view is the camera's.
  return [canvas.width / 2 - (x - cx) * scale, canvas.height / 2 + 20 - (y - cy) * scale];
}

function colourOf(i) { return COLOURS[i % COLOURS.length]; }

function labelColour(label) {
  let h = 0;
  for (const ch of label) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h}, 65%, 42%)`;
}

function drawSkeletons() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.bounds) return;
  let i = 0;
  for (const b of state.bodies.values()) {
    const colour = colourOf(i++);
    if (!b.joints) continue;
    const parents = (state.layouts[b.layout] || { parents: state.parents }).parents;
    const pts = b.joints.map(([x, y]) => project(x, y));
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 3;
    parents.forEach((parent, j) => {
      if (parent < 0 || !pts[j] || !pts[parent]) return;
      ctx.beginPath(); ctx.moveTo(...pts[j]); ctx.lineTo(...pts[parent]); ctx.stroke();
    });
    for (const [px, py] of pts) { ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.fill(); }
    const top = pts.reduce((a, p) => (p[1] < a[1] ? p : a));
    const lines = [`body ${b.body}`];
    for (const model of b.models) {
      const now = current(b, model);
      if (now && now.action) lines.push(now.label); // its model is in the list beside
    }
    ctx.font = "bold 15px system-ui"; ctx.textAlign = "center";
    lines.forEach((line, n) => ctx.fillText(line, top[0], top[1] - 12 - 17 * (lines.length - 1 - n)));
  }
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function timeline(b, model) {
  const now = state.clocks.get(b.stream) ?? 0;
  const from = now - HISTORY_S;
  const x = (t) => ((t - from) / HISTORY_S) * TIMELINE.width;
  const root = svg("svg", {
    class: "timeline",
    viewBox: `0 0 ${TIMELINE.width} ${TIMELINE.height}`,
    "data-now": now,
    "data-from": from,
    role: "img",
    "aria-label": `${model} actions of body ${b.body}, last ${HISTORY_S} s`,
  });
  root.append(svg("rect", { x: 0, y: 0, width: TIMELINE.width, height: TIMELINE.bar, class: "track" }));
  for (let ago = HISTORY_S; ago >= 0; ago -= 10) {
    const tx = x(now - ago);
    root.append(svg("line", { x1: tx, x2: tx, y1: 0, y2: TIMELINE.bar + 3, class: "tick" }));
    const text = svg("text", {
      x: tx, y: TIMELINE.height - 1, class: "tick",
      "text-anchor": ago === HISTORY_S ? "start" : ago === 0 ? "end" : "middle",
    });
    text.textContent = ago === 0 ? `now: ${now.toFixed(1)} s` : `−${ago} s`;
    root.append(text);
  }
  for (const e of (b.tracks.get(model) || { entries: [] }).entries) {
    const end = e.end === null ? now : e.end;
    if (end < from) continue;
    const left = x(Math.max(e.start, from));
    // a nested <svg> clips its label to the bar
    const bar = svg("svg", {
      class: "entry", x: left, y: 0, width: Math.max(x(end) - left, 1), height: TIMELINE.bar,
      "data-label": e.label, "data-start": e.start, "data-end": e.end === null ? "" : e.end,
      "data-open": e.end === null,
    });
    bar.append(svg("rect", { width: "100%", height: "100%", fill: labelColour(e.label) }));
    const text = svg("text", { x: 4, y: TIMELINE.bar - 7 });
    text.textContent = e.label;
    const title = svg("title", {});
    title.textContent = `${e.label}: ${e.start.toFixed(2)} s – ${e.end === null ? "now" : `${e.end.toFixed(2)} s`}`
      + (e.confidence == null ? "" : `, confidence ${(100 * e.confidence).toFixed(0)}%`);
    bar.append(text, title);
    root.append(bar);
  }
  return root;
}

const items = new Map(); // "stream/body" -> its <li>, kept while the body is

function renderList() {
  for (const [k, li] of items) if (!state.bodies.has(k)) { li.remove(); items.delete(k); }
  let i = 0;
  for (const [k, b] of state.bodies) {
    let li = items.get(k);
    if (!li) {
      li = document.createElement("li");
      li.dataset.stream = b.stream;
      li.dataset.body = b.body;
      items.set(k, li);
    }
    li.replaceChildren();
    li.style.borderLeftColor = colourOf(i++);
    const name = document.createElement("div");
    name.className = "who";
    name.textContent = `stream ${b.stream}, body ${b.body}`;
    li.append(name);
    for (const model of b.models) {
      const row = document.createElement("div");
      row.className = "model";
      row.dataset.model = model;
      const head = document.createElement("div");
      head.className = "head";
      const label = document.createElement("span");
      label.className = "model-name";
      label.textContent = model;
      const now = current(b, model);
      const action = document.createElement("span");
      action.className = "current";
      action.dataset.action = now ? now.label : "";
      action.dataset.none = now ? String(!now.action) : "true";
      action.textContent = now
        ? now.label + (now.confidence == null ? "" : ` (${(100 * now.confidence).toFixed(1)}%)`)
        : "…";
      head.append(label, action);
      const t = b.tracks.get(model);
      if (t && t.prediction && t.prediction.top_k) {
        const topk = document.createElement("span");
        topk.className = "topk";
        topk.textContent = t.prediction.top_k
          .map((p) => `${p.label} ${(100 * p.probability).toFixed(0)}%`).join(", ");
        head.append(topk);
      }
      row.append(head, timeline(b, model));
      li.append(row);
    }
    listEl.append(li); // moves it to the end: the list keeps the bodies' order
  }
}

let pending = false;
function render() {
  // at most once per animation frame, however many messages arrive
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    drawSkeletons();
    renderList();
  });
}

// -- messages ---------------------------------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case "watching":
      state.parents = msg.parents;
      state.layouts = msg.layouts || {};
      state.models = new Map((msg.models || [{ ...msg.model, served_as: msg.model.name }])
        .map((m) => [m.served_as, m]));
      modelEl.textContent = [...state.models.values()]
        .map((m) => `${m.served_as === m.name ? "" : `${m.served_as}: `}${m.name} ${m.version} (${m.layout})`)
        .join(" · ");
      break;
    case "skeleton":
      advance(msg.stream, msg.timestamp);
      updateBounds(msg.bodies);
      for (const sk of msg.bodies) {
        const b = body(msg.stream, sk.id);
        b.joints = sk.joints;
        b.layout = msg.layout;
        for (const model of msg.models || []) track(b, model);
      }
      break;
    case "prediction":
      advance(msg.stream, msg.window.end);
      prediction(msg);
      break;
    case "action_started":
      state.actionEvents++;
      advance(msg.stream, msg.timestamp);
      actionStarted(msg);
      break;
    case "action_ended":
      state.actionEvents++;
      advance(msg.stream, msg.timestamp);
      actionEnded(msg);
      break;
    case "evicted":
      forget(key(msg.stream, msg.body));
      break;
    case "stream_closed":
      for (const [k, b] of state.bodies) if (b.stream === msg.stream) forget(k);
      state.clocks.delete(msg.stream);
      break;
    case "error":
      setStatus(`error: ${msg.message}`, "error");
      return;
    default:
      return;
  }
  prune(); // here, not when drawing: a hidden tab draws nothing but keeps its memory bounded
  render();
}

function connect() {
  const ws = new WebSocket(streamUrl());
  ws.onopen = () => { setStatus("watching", "open"); ws.send(JSON.stringify({ type: "watch" })); };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    setStatus(`closed (${event.code}${event.reason ? ": " + event.reason : ""}); retrying`, "closed");
    setTimeout(connect, 2000);
  };
}

connect();
