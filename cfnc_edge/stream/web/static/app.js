// The operator's page: polls /api/state, shows live frames from /ws/live/N, posts reviews.
// No libraries: it has to work on a line without internet.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
const $ = (sel, root = document) => root.querySelector(sel);
const cards = new Map();   // source index -> its element
const items = new Map();   // gallery item id -> its element
let live = {};             // source index -> {info} of the frame shown

function fmt(x, digits = 1) { return typeof x === "number" ? x.toFixed(digits) : (x ?? "–"); }

async function review(id, label, buttons) {
  const r = await fetch(withToken("/api/review/" + encodeURIComponent(id)), {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({label})});
  if (!r.ok) { alert("review not saved: " + await r.text()); return; }
  buttons.forEach(b => b.classList.toggle("chosen", b.dataset.label === label));
  document.body.dataset.lastReview = (await r.json()).saved;
}

function wireButtons(root, idOf) {
  const buttons = [...root.querySelectorAll("button[data-label]")];
  buttons.forEach(b => b.addEventListener("click", () => { const id = idOf(); if (id) review(id, b.dataset.label, buttons); }));
  return buttons;
}

function connect(index, card) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(withToken(`${proto}//${location.host}/ws/live/${index}`));
  ws.binaryType = "blob";
  let pending = null;
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") { pending = JSON.parse(ev.data); return; }
    const img = $("img.live", card), old = img.src;
    img.src = URL.createObjectURL(ev.data);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    live[index] = pending;
    img.dataset.frame = pending.frame;
    img.dataset.seq = pending.seq;
    const verdict = pending.anomalous ? "ANOMALY" : (pending.anomalous === false ? "ok" : "");
    $(".frame-info", card).textContent = `frame ${pending.frame} · score ${fmt(pending.score, 3)}` +
      (pending.normalized !== null ? ` (${fmt(pending.normalized, 2)})` : "") + ` · ${verdict}`;
    $(".buttons", card).querySelectorAll("button").forEach(b => b.classList.remove("chosen"));
  };
  ws.onclose = () => { if (!document.body.dataset.closed) setTimeout(() => connect(index, card), 1000); };
}

function sourceCard(src) {
  let card = cards.get(src.index);
  if (card) return card;
  card = $("#source-template").content.firstElementChild.cloneNode(true);
  card.dataset.source = src.label;
  $(".label", card).textContent = src.label;
  wireButtons($(".caption", card), () => live[src.index] && live[src.index].id);
  $("#sources").appendChild(card);
  cards.set(src.index, card);
  connect(src.index, card);
  return card;
}

function drawTimeline(canvas, points, threshold) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 4;
  c.clearRect(0, 0, w, h);
  if (!points.length) return;
  const top = threshold !== null ? 1 : Math.max(...points.map(p => p[1])) * 1.1 || 1;
  const y = v => h - pad - (Math.min(v, top) / top) * (h - 2 * pad);
  const x = i => pad + (i / Math.max(points.length - 1, 1)) * (w - 2 * pad);
  if (threshold !== null) {
    c.strokeStyle = "#b3261e"; c.setLineDash([5, 4]); c.beginPath();
    c.moveTo(0, y(threshold)); c.lineTo(w, y(threshold)); c.stroke(); c.setLineDash([]);
    c.fillStyle = "#b3261e"; c.font = "11px sans-serif"; c.fillText("threshold", w - 60, y(threshold) - 3);
  }
  c.strokeStyle = "#3566a8"; c.beginPath();
  points.forEach((p, i) => i ? c.lineTo(x(i), y(p[1])) : c.moveTo(x(i), y(p[1])));
  c.stroke();
  c.fillStyle = "#b3261e";
  points.forEach((p, i) => { if (p[2]) c.fillRect(x(i) - 2, y(p[1]) - 2, 4, 4); });
}

function renderSources(s) {
  for (const src of s.sources) {
    const card = sourceCard(src), st = (s.summary.sources || {})[src.label] || {};
    const badge = $(".state", card);
    badge.textContent = st.state || "";
    badge.className = "state badge " + (st.state || "");
    drawTimeline($(".timeline", card), s.timeline[src.label] || [], s.threshold);
    const drift = st.drift !== undefined
      ? ` · drift test ${fmt(st.drift, 2)} (alarm at ${s.drift_alarm})` + (st.drift_alarm ? " ALARM" : "") : "";
    $(".stats", card).textContent = `${st.frames || 0} frames · ${st.anomalies || 0} anomalies · ` +
      `${st.dropped || 0} dropped · ${st.corrupt || 0} corrupt · ${st.outages || 0} outages · ` +
      `${st.reconnects || 0} reconnects` + drift;
    card.dataset.drift = st.drift_alarm ? "alarm" : "ok";
  }
}

function renderGallery(s) {
  const seen = new Set();
  let previous = null;
  for (const it of s.gallery) {
    seen.add(it.id);
    let el = items.get(it.id);
    if (!el) {
      el = $("#item-template").content.firstElementChild.cloneNode(true);
      el.dataset.id = it.id;
      $("img", el).src = withToken("/api/item/" + encodeURIComponent(it.id) + ".jpg");
      const when = new Date(it.time * 1000).toLocaleTimeString();
      $(".info", el).textContent = `${it.source} · frame ${it.frame} · score ${fmt(it.score, 3)} · ${when}`;
      const buttons = wireButtons(el, () => it.id);
      if (it.reviewed) buttons.forEach(b => b.classList.toggle("chosen", b.dataset.label === it.reviewed));
      items.set(it.id, el);
    }
    // newest first, in the order the state gives
    const gallery = $("#gallery");
    if (previous ? previous.nextSibling !== el : gallery.firstChild !== el) gallery.insertBefore(el, previous ? previous.nextSibling : gallery.firstChild);
    previous = el;
  }
  for (const [id, el] of items) if (!seen.has(id)) { el.remove(); items.delete(id); }
}

function render(s) {
  $("#mode").textContent = s.mode === "live" ? "· live" : `· review of saved anomalies (${s.pending} of ${s.saved} to review)`;
  $("#bundle").textContent = s.bundle && s.bundle.path ? `bundle ${s.bundle.path}` + (s.bundle.revision ? ` (revision ${s.bundle.revision})` : "") : "";
  $("#totals").hidden = !s.summary;
  if (s.summary) {
    for (const el of document.querySelectorAll("[data-count]")) {
      const k = el.dataset.count;
      const v = k === "views_dropped" ? s.views.dropped : s.summary[k];
      el.textContent = (k === "fps" || k.startsWith("latency")) ? fmt(v) : v;
    }
    renderSources(s);
  }
  const alarms = $("#alarms");
  alarms.replaceChildren();
  const warnings = s.summary ? [...s.summary.outages.slice(-3), ...s.summary.warnings] : [];
  for (const w of warnings) {
    const div = document.createElement("div");
    div.className = w.includes("drift alarm") ? "alarm" : "warning";
    div.textContent = w;
    alarms.appendChild(div);
  }
  $("#gallery-title").textContent = s.mode === "live" ? "Recent anomalies" : "Saved anomalies to review (newest first)";
  renderGallery(s);
  const panel = $("#review-panel");
  panel.hidden = !s.review;
  if (s.review) {
    for (const el of document.querySelectorAll("[data-review]")) el.textContent = s.review[el.dataset.review];
    $("#review-folder").textContent = s.review.folder;
    $("#review-commands").textContent = s.review.commands.join("\n");
  }
  document.querySelectorAll("button[data-label]").forEach(b => b.disabled = !s.review);
}

async function poll() {
  try {
    const r = await fetch(withToken("/api/state"));
    if (!r.ok) throw new Error(await r.text());
    const s = await r.json();
    render(s);
    $("#connection").textContent = s.closed ? "stream ended" : "connected";
    if (s.closed) document.body.dataset.closed = "1";
  } catch (e) {
    $("#connection").textContent = "not connected (" + e.message + ")";
  }
  setTimeout(poll, 500);
}
poll();
