// Watches the service's streams over /v1/stream ({"type": "watch"}) and draws every body's
// skeleton with its current label. No build step, no dependencies.
"use strict";

const canvas = document.getElementById("skeleton");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const modelEl = document.getElementById("model");
const listEl = document.getElementById("bodies");
const COLOURS = ["#4cf", "#fc4", "#f6c", "#6f6", "#f84", "#a8f"];

const state = { parents: [], bodies: new Map(), labels: new Map(), bounds: null };
window.masksemLive = state; // inspected by the browser test and handy in the console

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

function updateBounds(bodies) {
  // Grow the view to fit what has been seen; a camera view: x to the sensor's left, y up.
  for (const body of bodies) {
    for (const [x, y] of body.joints) {
      if (x === 0 && y === 0) continue;
      const b = state.bounds || { minX: x, maxX: x, minY: y, maxY: y };
      b.minX = Math.min(b.minX, x); b.maxX = Math.max(b.maxX, x);
      b.minY = Math.min(b.minY, y); b.maxY = Math.max(b.maxY, y);
      state.bounds = b;
    }
  }
}

function project(x, y) {
  const b = state.bounds;
  const w = Math.max(b.maxX - b.minX, 0.5), h = Math.max(b.maxY - b.minY, 0.5);
  const scale = 0.85 * Math.min(canvas.width / w, canvas.height / h);
  const cx = (b.minX + b.maxX) / 2, cy = (b.minY + b.maxY) / 2;
  // Kinect x points to the sensor's left: mirror it so the view is the camera's.
  return [canvas.width / 2 - (x - cx) * scale, canvas.height / 2 - (y - cy) * scale];
}

function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.bounds) return;
  let i = 0;
  for (const [id, body] of state.bodies) {
    const colour = COLOURS[i++ % COLOURS.length];
    const pts = body.joints.map(([x, y]) => project(x, y));
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = 3;
    state.parents.forEach((parent, j) => {
      if (parent < 0) return;
      ctx.beginPath(); ctx.moveTo(...pts[j]); ctx.lineTo(...pts[parent]); ctx.stroke();
    });
    for (const [px, py] of pts) { ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.fill(); }
    const label = state.labels.get(id);
    if (label) {
      const top = pts.reduce((a, b) => (b[1] < a[1] ? b : a));
      ctx.font = "bold 20px system-ui"; ctx.textAlign = "center";
      ctx.fillText(`${label.label} ${(100 * label.probability).toFixed(0)}%`, top[0], top[1] - 16);
    }
  }
}

function renderList() {
  listEl.replaceChildren();
  for (const [id, body] of state.bodies) {
    const li = document.createElement("li");
    li.dataset.body = id;
    const label = state.labels.get(id);
    const name = document.createElement("div");
    name.className = "label";
    name.textContent = label ? `${label.label} (${(100 * label.probability).toFixed(1)}%)` : "…";
    const info = document.createElement("div");
    info.className = "topk";
    info.textContent = `stream ${body.stream}, body ${body.body}` + (label
      ? ` — ${label.top_k.map((t) => `${t.label} ${(100 * t.probability).toFixed(0)}%`).join(", ")}`
      : "");
    li.append(name, info);
    listEl.append(li);
  }
}

function onMessage(msg) {
  switch (msg.type) {
    case "watching":
      state.parents = msg.parents;
      modelEl.textContent = `${msg.model.name} ${msg.model.version} (${msg.model.layout})`;
      break;
    case "skeleton":
      updateBounds(msg.bodies);
      for (const body of msg.bodies) {
        state.bodies.set(key(msg.stream, body.id), { stream: msg.stream, body: body.id, joints: body.joints });
      }
      break;
    case "prediction":
      state.labels.set(key(msg.stream, msg.body), msg);
      break;
    case "evicted":
      state.bodies.delete(key(msg.stream, msg.body));
      state.labels.delete(key(msg.stream, msg.body));
      break;
    case "stream_closed":
      for (const [id, body] of state.bodies) {
        if (body.stream === msg.stream) { state.bodies.delete(id); state.labels.delete(id); }
      }
      break;
    case "error":
      setStatus(`error: ${msg.message}`, "error");
      return;
    default:
      return;
  }
  draw();
  renderList();
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
