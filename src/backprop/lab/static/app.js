// backprop lab: the page. Fetches the settings table, builds the controls, talks to the
// training session over a WebSocket and draws what it sends. No build step, no network
// access beyond this server.

import { buildControls, fromQuery, sameValue, toQuery } from "./controls.js";
import { BoundaryView, LossChart, StabilityMap, renderFindings, renderGradBars, tooltip } from "./charts.js";
import { NetworkView } from "./network.js";
import { NeuronPictures, pictureWords } from "./neurons.js";
import { StepAnimation } from "./stepanim.js";
import { fmt, fmtInt, fmtLoss, num } from "./format.js";
import { GRIDS, axisNote, axisSettings, mapRequest, pickChanges } from "./mapaxes.js";

const $ = (id) => document.getElementById(id);
const SEND_EVERY_MS = 80;        // live sliders: at most ~12 messages a second while dragging
const CSV_MAX_BYTES = 1_000_000; // until /api/limits says otherwise (the server checks it too)
const USER_HOLD_MS = 600;        // a control the user just moved ignores stale echoes this long

const lab = {
  table: null,
  limits: null,        // GET /api/limits: sizes the server takes (the CSV's among them)
  values: {},          // the settings the server accepted last
  running: false,
  awaitStatus: false,   // a play/pause was sent and its status answer has not come back
  diverged: null,
  step: 0,
  ws: null,
  connected: false,
  retry: 0,
  touched: new Map(),  // name -> time the user last changed it
  queued: {},          // live changes waiting for the next send
  sendTimer: null,
  lastSend: 0,
  anim: null,
  frames: 0,
};
window.__lab = lab; // for debugging in the console (and the browser tests' diagnostics)
lab.handle = (msg) => handle(msg); // feed a message by hand, as if the server had sent it

let controls, network, loss, boundary, stability;

// ---- start-up ----------------------------------------------------------------------------------
async function main() {
  let table;
  try {
    const res = await fetch("/api/settings", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    table = await res.json();
  } catch (e) {
    $("controls").innerHTML = `<p class="loading">Could not load the settings from the server (${e.message}). Is <code>backprop lab</code> still running?</p>`;
    return;
  }
  lab.table = table;
  try {   // the sizes the server takes; without them the page still works, with a default
    const res = await fetch("/api/limits", { cache: "no-store" });
    if (res.ok) lab.limits = await res.json();
  } catch { /* keep the defaults */ }
  const defaults = Object.fromEntries(Object.entries(table).map(([k, s]) => [k, s.default]));
  const fromUrl = fromQuery(location.search, table);
  if (fromUrl.bad.length) toast(`Ignored ${fromUrl.bad.join(", ")} in the link: not a setting this lab knows, or a bad value.`);
  lab.urlValues = fromUrl.values;
  lab.values = { ...defaults, ...fromUrl.values };

  controls = buildControls({
    form: $("controls"), speedSlot: $("speed-slot"), table, values: lab.values, onChange: onControl,
  });
  network = new NetworkView($("network"), $("layer-tools"), $("layer-count-slot"), $("network-legend"), {
    onHidden: (h) => change("hidden", h, true),
    onActivations: (a) => change("activations", a, true),
    onFocus: () => showFocus(),
    list: $("layer-list"),
  });
  network.setLimits(table);
  network.onAnimStale = stopAnimation;
  network.setSettings(lab.values);
  loss = new LossChart($("loss-chart"));
  loss.log = $("log-scale").checked;
  boundary = new BoundaryView($("boundary"), $("boundary-caption"));
  stability = new StabilityMap($("stability"), (lr, value, axis) => {
    const changes = pickChanges(lr, axis, value, lab.values);
    for (const [name, v] of Object.entries(changes)) change(name, v, true);
    controls.set(changes);
  });

  lab.views = { network, boundary, stability, loss };   // for the console and the browser tests
  wireButtons();
  redrawAll();
  new ResizeObserver(() => { network.layoutTools(); redrawAll(); }).observe(document.body);
  connect();
}

function wireButtons() {
  $("play").addEventListener("click", () => setRunning(!lab.running));
  $("step").addEventListener("click", () => {
    if (lab.diverged) { toast("Training diverged; press Reset to start again.", "info"); return; }
    setRunning(false);
    send({ type: "step" });
  });
  $("reset").addEventListener("click", resetSession);
  $("diverged-reset").addEventListener("click", () => resetSession());
  $("diverged-recover").addEventListener("click", () => {
    const lr = lab.diverged && num(lab.diverged.recovery_lr);
    lab.touched.delete("lr");     // the slider shows the recovery's rate, even just after a drag
    resetSession(Number.isFinite(lr) ? lr : undefined);
  });
  $("grad-view").addEventListener("change", (e) => { network.setGradView(e.target.checked); showFocus(); });
  $("log-scale").addEventListener("change", (e) => { loss.log = e.target.checked; loss.draw(); });
  $("show-test").addEventListener("change", (e) => { boundary.showTest = e.target.checked; boundary.draw(); });
  $("stability-run").addEventListener("click", () => {
    if (stability.running) {            // the button reads "Cancel" while a map runs
      send({ type: "cancel_stability" });
      return;
    }
    const axis = $("stability-axis").value;
    const nTrain = lab.lastFrame ? num(lab.lastFrame.n_train) : NaN;
    const request = mapRequest($("stability-grid").value, axis, Number($("stability-steps").value),
      lab.values, lab.table, nTrain);
    stability.start();
    stability.madeWith = mapSettings(lab.values, axis);
    markStale();          // clears the note of the map before
    $("stability-run").textContent = "Cancel";
    send(request);
  });
  $("stability-axis").addEventListener("change", showAxisNote);
  // grid sizes and steps beyond what this server takes can't be chosen
  const limits = lab.limits || {};
  for (const o of $("stability-grid").options) {
    const g = GRIDS[o.value];
    o.disabled = num(limits.max_stability_cells) < g.cols * Math.max(g.rows, ((lab.table.init || {}).choices || []).length);
  }
  for (const o of $("stability-steps").options) o.disabled = num(limits.max_stability_steps) < Number(o.value);
  $("export-script").addEventListener("click", () => send({ type: "export", what: "script" }));
  $("export-checkpoint").addEventListener("click", () => send({ type: "export", what: "checkpoint" }));
  $("share").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      toast("Link copied: it opens the lab with these settings.", "info");
    } catch {
      toast(`Share this link: ${location.href}`, "info");
    }
  });
}

/** Start again from step 0; with `lr`, with that learning rate (the banner's recovery). */
function resetSession(lr) {
  stopAnimation();
  send(lr === undefined ? { type: "reset" } : { type: "reset", lr });
}

// ---- the stability map's settings ------------------------------------------------------------
// A map trains the session's settings over its own learning rates and rows (the values of its
// axis: batch size, initialisation, depth or momentum): every other setting (the data, the
// network, the optimiser...) is what it was made for.
function mapSettings(values, axis) {
  const own = new Set(["lr", "speed", ...axisSettings(axis)]);
  return Object.fromEntries(Object.entries(values).filter(([k]) => !own.has(k)));
}

/** Under the map: what its rows mean for the optimiser and network in use. */
function showAxisNote() {
  $("stability-axis-note").textContent = axisNote($("stability-axis").value, lab.values);
}

/** Grey the map out, and say why, once the settings it was made for are no longer in force. */
function markStale(reason) {
  const made = stability.madeWith;
  if (!made) return;
  let why = reason;
  if (!why) {
    const changed = Object.keys(made).filter((k) => !sameValue(made[k], lab.values[k]));
    if (changed.length) why = `made for other settings (${changed.map((k) => (lab.table[k] || {}).label || k).join(", ")})`;
  }
  if (why && !stability.stale) stability.stale = why;
  const stale = !!stability.stale;
  $("stability").dataset.stale = String(stale);
  $("stability").closest(".stability-wrap").classList.toggle("stale", stale);
  $("stability-stale").textContent = stale ? `Out of date: ${stability.stale}. Press Run again.` : "";
}

function setRunning(on) {
  if (on && lab.diverged) { toast("Training diverged; press Reset to start again.", "info"); return; }
  lab.running = on;
  // Frames already on their way still carry the old state: until the server's "status" answer
  // arrives, they must not flip the button back.
  lab.awaitStatus = true;
  if (on) stopAnimation();
  send({ type: on ? "play" : "pause" });
  renderPlay();
}

function renderPlay() {
  const b = $("play");
  b.setAttribute("aria-pressed", String(lab.running));
  b.querySelector(".icon").textContent = lab.running ? "❚❚" : "▶";
  b.querySelector(".label").textContent = lab.running ? "Pause" : "Play";
}

// ---- controls -> server -----------------------------------------------------------------------
function onControl(name, value, final) {
  if (name === "__upload_csv__") { uploadCsv(value.file); return; }
  change(name, value, final);
}

/** Send a CSV file the user chose, unless it is bigger than the server takes (it would refuse it). */
async function uploadCsv(file) {
  const limit = num((lab.limits || {}).max_csv_bytes) || CSV_MAX_BYTES;
  if (file.size > limit) {
    toast(`${file.name} is ${fmtBytes(file.size)}: the lab takes CSV files of at most ${fmtBytes(limit)}.`);
    return;
  }
  let text;
  try {
    text = await file.text();
  } catch (e) {
    toast(`Could not read ${file.name}: ${e.message}`);
    return;
  }
  // The name shows once the server has taken the file: a refused one leaves the last one's.
  if (send({ type: "upload_csv", text, name: file.name })) {
    lab.pendingCsvName = file.name;
    lab.uploadToast = toast("Uploading your CSV…", "info");
  }
}

function fmtBytes(n) {
  if (n < 1000) return `${n} bytes`;
  if (n < 1e6) return `${+(n / 1e3).toFixed(1)} kB`;
  return `${+(n / 1e6).toFixed(1)} MB`;
}

/** A user change: live settings go out at a bounded rate while dragging, the rest on release. */
function change(name, value, final) {
  lab.touched.set(name, performance.now());
  const spec = lab.table[name] || {};
  if (!final && spec.effect === "reset") return;   // rebuilding on every pixel of a drag is waste
  lab.queued[name] = value;
  const wait = final ? 0 : Math.max(0, SEND_EVERY_MS - (performance.now() - lab.lastSend));
  clearTimeout(lab.sendTimer);
  lab.sendTimer = setTimeout(flush, wait);
}

function flush() {
  const values = lab.queued;
  lab.queued = {};
  if (!Object.keys(values).length) return;
  lab.lastSend = performance.now();
  if (Object.keys(values).some((k) => (lab.table[k] || {}).effect === "reset")) stopAnimation();
  send({ type: "set", values });
}

function send(msg) {
  if (lab.ws && lab.ws.readyState === WebSocket.OPEN) {
    lab.ws.send(JSON.stringify(msg));
    return true;
  }
  const now = performance.now();
  if (msg.type !== "pause" && !(now - (lab.offlineToastAt || -1e9) < 4000)) {   // one note, not one per drag
    lab.offlineToastAt = now;
    toast("Not connected to the training server; retrying…");
  }
  return false;
}

// ---- the socket -------------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  lab.ws = ws;
  setConn("connecting");
  ws.addEventListener("open", () => {
    lab.connected = true;
    lab.retry = 0;
    setConn("open");
    // The first connection sends the link's settings; a reconnection sends what we had.
    const settings = lab.frames ? changedFromDefaults(lab.values) : lab.urlValues;
    ws.send(JSON.stringify({ type: "hello", settings }));
    if (lab.running) ws.send(JSON.stringify({ type: "play" }));
  });
  ws.addEventListener("message", (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    handle(msg);
  });
  ws.addEventListener("close", (e) => {
    lab.connected = false;
    if (lab.ws !== ws) return;
    setConn("closed", e.code === 1008 ? "refused" : e.code === 1013 ? "server busy" : "reconnecting…");
    if (e.code === 1008) { toast(`The server refused the connection: ${e.reason || "not allowed"}.`); return; }
    if (e.code === 1013 || e.code === 4429) toast(e.reason || "The lab has too many open sessions; close a tab and reload.");
    const delay = Math.min(5000, 300 * 2 ** lab.retry++);
    setTimeout(connect, delay);
  });
}

function changedFromDefaults(values) {
  const out = {};
  for (const [k, spec] of Object.entries(lab.table)) {
    if (k in values && !sameValue(values[k], spec.default)) out[k] = values[k];
  }
  return out;
}

function setConn(state, text) {
  const c = $("conn");
  c.dataset.state = state;
  c.querySelector(".conn-text").textContent = text || (state === "open" ? "connected" : state);
}

function handle(msg) {
  switch (msg.type) {
    case "settings": lab.gotSettings = true; return onSettings(msg.values || {}, true);
    case "state": return onState(msg);
    case "step_detail": return onStepDetail(msg);
    case "error": return onError(msg);
    case "stability_start":
      stability.start(msg.lrs, msg.values ?? msg.batch_sizes, msg.axis || "batch_size");
      stability.madeWith = mapSettings(lab.values, stability.axis);
      stability.stale = null;
      return markStale();
    case "stability_cell": return stability.add(msg);
    case "stability_done": return stabilityDone(msg);
    case "export": return download(msg);
    case "csv_loaded": case "uploaded":
      if (lab.uploadToast) lab.uploadToast.remove();
      if (lab.pendingCsvName) controls.setCsvName(lab.pendingCsvName);
      lab.pendingCsvName = null;
      if (stability.madeWith) markStale("made for the data before this CSV");
      return toast(`Loaded your CSV: ${msg.rows ?? "?"} rows, ${msg.task === "classification"
        ? `${msg.classes} classes${Array.isArray(msg.class_labels) ? ` (${msg.class_labels.join(", ")})` : ""}`
        : msg.task || "?"}.`, "info");
    case "status":
      lab.awaitStatus = false;
      if (typeof msg.running === "boolean") { lab.running = msg.running; renderPlay(); }
      if (Number.isInteger(msg.step)) $("step-count").textContent = fmtInt(msg.step);
      return undefined;
    default: return undefined;
  }
}

/** The server's settings: show them (but not over a control the user is moving). */
function onSettings(values, echo) {
  const now = performance.now();
  const skip = new Set();
  for (const [name, t] of lab.touched) {
    if (now - t < USER_HOLD_MS && !sameValue(values[name], controls.get(name))) skip.add(name);
  }
  if (echo) lab.values = { ...lab.values, ...values };
  else for (const [k, v] of Object.entries(values)) if (!skip.has(k)) lab.values[k] = v;
  controls.set(values, skip);
  network.setSettings(lab.values);
  const q = toQuery(lab.values, lab.table);
  const url = `${location.pathname}${q ? `?${q}` : ""}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(null, "", url);
  stability.settings = lab.values;
  showAxisNote();
  markStale();
}

function onState(f) {
  lab.frames++;
  lab.lastFrame = f;
  // "settings" messages are the truth; a frame's settings (what it was trained with) can lag
  // a change in flight, so they only fill in before the first settings message.
  if (f.settings && !lab.gotSettings) onSettings(f.settings, false);
  if (!lab.awaitStatus && typeof f.running === "boolean" && f.running !== lab.running) {
    lab.running = f.running;
    renderPlay();
  }
  lab.step = f.step;
  $("step-count").textContent = fmtInt(f.step ?? 0);
  $("epoch-count").textContent = fmtInt(f.epoch ?? 0);
  const m = f.metrics || {};
  const last = (curve) => (Array.isArray(curve) && curve.length ? curve[curve.length - 1][1] : undefined);
  const trainLoss = "train_loss" in m ? m.train_loss : last(f.train_loss);
  const testLoss = "test_loss" in m ? m.test_loss : last(f.test_loss);
  setLoss($("train-loss"), trainLoss, f.step);
  setLoss($("test-loss"), testLoss, f.step);
  if (Number.isFinite(num(f.n_train))) controls.limit("batch_size", num(f.n_train));
  if (Number.isInteger(f.dims)) controls.setDims(f.dims);   // the sine set has no x2
  const lrNow = f.lr_now ?? lab.values.lr, bsNow = f.batch_size_now ?? lab.values.batch_size;
  $("now").textContent = `lr ${fmt(lrNow, 3)} · batch ${fmtInt(bsNow)}`;
  const pct = (a) => (Number.isFinite(num(a)) && a !== null ? `${Math.round(num(a) * 100)}%` : "–");
  $("accuracy").textContent = m.train_accuracy === null || m.train_accuracy === undefined ? ""
    : `train ${pct(m.train_accuracy)} · test ${pct(m.test_accuracy)} right`;

  // diverged: a banner with one click to reset; the charts keep what they had
  lab.diverged = f.diverged || null;
  const banner = $("diverged");
  if (lab.diverged) {
    $("diverged-text").textContent = lab.diverged.message || `diverged at step ${lab.diverged.step}: learning rate too high for this batch size?`;
    const lr = num(lab.diverged.recovery_lr);
    const recover = $("diverged-recover");
    recover.hidden = !Number.isFinite(lr);
    recover.textContent = `Reset with learning rate ${fmt(lr, 3)}`;
    $("diverged-why").textContent = Number.isFinite(lr) ? (lab.diverged.recovery_stable
      ? `${fmt(lr, 3)} is the last learning rate that trained stably.`
      : `No learning rate has trained stably yet; ${fmt(lr, 3)} is a safer one to try.`) : "";
    banner.hidden = false;
    if (lab.running) { lab.running = false; renderPlay(); }
  } else banner.hidden = true;
  $("play").disabled = !!lab.diverged;
  $("step").disabled = !!lab.diverged;

  loss.update(f.train_loss, f.test_loss, lab.diverged);
  boundary.labels = Array.isArray(f.class_labels) ? f.class_labels : null;
  if ("boundary" in f || "points" in f) boundary.update(f.boundary, "points" in f ? f.points : undefined);
  if ("neurons" in f) network.setPictures(f.neurons ? new NeuronPictures(f.neurons) : null);
  if (f.network) {
    network.update(f.network, {
      kind: f.task === "regression" ? "regression" : "classes",
      labels: Array.isArray(f.class_labels) ? f.class_labels : null,
    });
  }
  showFocus();
  renderGradBars($("grad-bars"), (f.grad_norms || []).map((g) => ({ ...g, norm: g.norm ?? (lab.diverged ? Infinity : null) })));
  renderFindings($("findings"), f.findings, f.step);
  if (stability.lrs.length) stability.draw();
}

/** The hidden neuron hovered (or tapped) in the network: its picture, large, under the data. */
function showFocus() {
  const hovered = network.canvas.dataset.focus;   // "l:k", set by the network's drawing
  const pics = network.pictures;
  if (!hovered || !pics) { boundary.setFocus(null); return; }
  const [l, k] = hovered.split(":").map(Number);
  const grad = network.gradView;
  const picture = pics.canvas(l - 1, k, grad);
  if (!picture) { boundary.setFocus(null); return; }
  const scale = pics.scale(l - 1, k, grad);
  const title = `Hidden layer ${l}, neuron ${k + 1}${grad ? " (gradient)" : ""}`;
  boundary.setFocus({ picture, title, words: `${pictureWords(grad, lab.lastFrame && lab.lastFrame.task)} (±${fmt(scale, 3)})` });
}

function setLoss(node, v, step) {
  if (v === undefined || (v === null && !step && !lab.diverged)) { node.textContent = "–"; node.classList.remove("bad"); return; }
  const x = num(v);
  node.textContent = fmtLoss(x);
  node.classList.toggle("bad", !Number.isFinite(x));
}

function onError(msg) {
  lab.awaitStatus = false;    // a refused play/pause gets no status answer: frames are the truth
  if (lab.uploadToast) { lab.uploadToast.remove(); lab.uploadToast = null; }
  toast(msg.message || "The server refused that.");
  if (msg.field && msg.field in lab.values) {
    // put the control back to what the server has
    lab.touched.delete(msg.field);
    controls.set({ [msg.field]: lab.values[msg.field] });
    const node = document.querySelector(`[data-field="${CSS.escape(msg.field)}"]`);
    if (node) { node.classList.add("invalid"); setTimeout(() => node.classList.remove("invalid"), 2500); }
  }
  if (stability.running && /stability|lrs|batch_sizes|steps|axis|values/i.test(`${msg.message} ${msg.field}`)) stabilityDone();
}

function stabilityDone(msg = {}) {
  stability.done();
  $("stability-run").textContent = "Run again";
  if (msg.cancelled) toast("Stability map cancelled.", "info");
}

// ---- one-step animation --------------------------------------------------------------------------
function onStepDetail(detail) {
  stopAnimation();
  if (detail.diverged) return;
  const anim = new StepAnimation(detail, (text) => { $("step-phase").textContent = text; });
  lab.anim = anim;
  network.anim = anim;
  const loop = () => {
    if (lab.anim !== anim) return;
    const going = anim.tick();
    network.draw();
    if (going) requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

function stopAnimation() {
  lab.anim = null;
  if (network) { network.anim = null; network.draw(); }
  $("step-phase").textContent = "";
}

// ---- misc ------------------------------------------------------------------------------------------
function download(msg) {
  let blob;
  if (typeof msg.text === "string") blob = new Blob([msg.text], { type: "text/x-python" });
  else if (typeof msg.base64 === "string") {
    const bin = atob(msg.base64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    blob = new Blob([bytes], { type: "application/octet-stream" });
  } else return;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = msg.filename || (msg.what === "script" ? "backprop_lab.py" : "backprop_lab.safetensors");
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  toast(`Saved ${a.download}`, "info");
}

function toast(text, kind = "error") {
  const box = $("toasts");
  const t = document.createElement("div");
  t.className = `toast ${kind}`;
  t.textContent = text;
  t.dataset.testid = "toast";
  t.setAttribute("data-testid", kind === "error" ? "error-toast" : "toast");
  box.append(t);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => t.remove(), kind === "error" ? 7000 : 3500);
  return t;
}

function redrawAll() {
  network.draw();
  loss.draw();
  boundary.draw();
  stability.draw();
}

window.addEventListener("blur", () => tooltip.hide());
main();
