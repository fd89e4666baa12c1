// Builds the labelled controls from the server's settings table (GET /api/settings) and keeps
// them in step with the values the server echoes back. Every control is a native input, so it
// has keyboard access and a visible focus for free.

import { choiceLabel, featureLabel, fmt, fmtInt } from "./format.js";

// Where each setting goes: the table's own "group" (in the table's order) when it has one;
// otherwise this fallback. Names in neither land in "More", so a new server-side setting
// shows up without a front-end change.
const GROUP_TITLES = {
  data: "Data", features: "Features", network: "Network", training: "Training",
  regularisation: "Regularisation", run: "Run",
};
const FALLBACK_GROUPS = {
  dataset: "data", n_samples: "data", noise: "data", train_fraction: "data", features: "features",
  activation: "network", init: "network", lr: "training", batch_size: "training",
  optimizer: "training", momentum: "training", beta1: "training", beta2: "training",
  schedule: "training", clip: "regularisation", weight_decay: "regularisation",
  dropout: "regularisation", seed: "run",
};
// Drawn elsewhere: the speed slider sits in the top bar, the layer sizes and per-layer
// activations on the network picture.
const ELSEWHERE = new Set(["speed", "hidden", "activations"]);

// Knobs that only mean something for some optimisers.
const RELEVANT = {
  // the session gives momentum to SGD + momentum only (RMSprop runs without it)
  momentum: (v) => !("optimizer" in v) || v.optimizer === "momentum",
  beta1: (v) => !("optimizer" in v) || ["adam", "adamw"].includes(v.optimizer),
  beta2: (v) => !("optimizer" in v) || ["adam", "adamw"].includes(v.optimizer),
  schedule_steps: (v) => !("schedule" in v) || v.schedule !== "constant",
  // the toy sets' knobs mean nothing for fixed data
  noise: (v) => !["csv", "digits"].includes(v.dataset),
  n_samples: (v) => !["csv", "digits"].includes(v.dataset),
  features: (v) => v.dataset !== "digits",   // the digits' inputs are their 64 pixels
};

// Settings whose useful values span decades although 0 ("off") is allowed: the slider's first
// notch is 0, the rest is logarithmic.
const ZERO_LOG = new Set(["clip", "weight_decay", "l1", "l2"]);
// Shown as "off" at 0.
const OFF_AT_ZERO = new Set(["clip", "weight_decay", "l1", "l2", "dropout"]);

const STEPS = 1000; // resolution of continuous sliders

/** Deep equality for the plain JSON values settings hold. */
export function sameValue(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (typeof a === "number" && typeof b === "number") {
    return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  }
  return false;
}

/** The text shown beside a control for a value. */
export function displayValue(name, spec, value) {
  if (value === null || value === undefined) return "—";
  if (OFF_AT_ZERO.has(name) && value === 0) return "off";
  if (name === "train_fraction") return `${Math.round(value * 100)}%`;
  if (name === "speed") return spec.max !== null && value >= spec.max ? "max" : `${fmtInt(value)} steps/s`;
  if (spec.type === "int") return fmtInt(value);
  if (spec.type === "float") return fmt(value, 3);
  if (spec.type === "choice") return choiceLabel(value);
  return String(value);
}

// ---- slider position <-> value ---------------------------------------------------------
function sliderKind(name, spec) {
  if (spec.type !== "float" && spec.type !== "int") return null;
  if (spec.min === null || spec.min === undefined || spec.max === null || spec.max === undefined) return null;
  if (spec.type === "int" && spec.max - spec.min > 5000 && !spec.log) return null; // seeds: a number box
  if (ZERO_LOG.has(name) && spec.min === 0 && spec.max > 0) return "zerolog";
  if (spec.log && spec.min > 0) return "log";
  return "linear";
}

function toPosition(kind, spec, value, max) {
  const lo = spec.min, hi = max;
  if (kind === "log") {
    const t = (Math.log(value) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
    return Math.round(Math.min(1, Math.max(0, t)) * STEPS);
  }
  if (kind === "zerolog") {
    if (value <= 0) return 0;
    const a = hi * 1e-4;
    const t = (Math.log(Math.max(value, a)) - Math.log(a)) / (Math.log(hi) - Math.log(a));
    return 1 + Math.round(Math.min(1, Math.max(0, t)) * (STEPS - 1));
  }
  if (spec.type === "int") return Math.round(value);
  return Math.round(((value - lo) / (hi - lo)) * STEPS);
}

function fromPosition(kind, spec, pos, max) {
  const lo = spec.min, hi = max;
  let v;
  if (kind === "log") {
    v = Math.exp(Math.log(lo) + (pos / STEPS) * (Math.log(hi) - Math.log(lo)));
    v = niceRound(v);
  } else if (kind === "zerolog") {
    if (pos <= 0) return 0;
    const a = hi * 1e-4;
    v = niceRound(Math.exp(Math.log(a) + ((pos - 1) / (STEPS - 1)) * (Math.log(hi) - Math.log(a))));
  } else if (spec.type === "int") {
    v = Math.round(pos);
  } else {
    v = lo + (pos / STEPS) * (hi - lo);
    v = Number(v.toPrecision(3));
  }
  if (spec.type === "int") v = Math.round(v);
  return Math.min(hi, Math.max(lo, v));
}

// Two significant digits: 0.0316 -> 0.032, 7.94 -> 7.9, and the ends stay exact.
function niceRound(v) {
  return Number(v.toPrecision(2));
}

// ---- building ---------------------------------------------------------------------------
let uid = 0;

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

/**
 * Build controls for `table` into `form` (and the top-bar / network slots) with `values`.
 * `onChange(name, value, final)` is called on every user change; `final` is false while a
 * slider is being dragged. Returns {set(values), limit(name, max), get(name)}.
 */
export function buildControls({ form, speedSlot, table, values, onChange }) {
  form.replaceChildren();
  const fields = new Map();       // name -> {spec, update(value)}
  const current = { ...values };
  let csvName = null;             // the upload's file-name label (makeUpload)

  const groups = new Map(); // title -> names, in the table's order, training first
  groups.set("Training", []);
  for (const name of Object.keys(table)) {
    if (ELSEWHERE.has(name)) continue;
    const g = table[name].group || FALLBACK_GROUPS[name] || "more";
    const title = GROUP_TITLES[g] || (g === "more" ? "More" : choiceLabel(g));
    if (!groups.has(title)) groups.set(title, []);
    groups.get(title).push(name);
  }
  form.append(el("p", { className: "note", text: "Every change takes effect at once; ↺ marks those that start training again." }));
  for (const [title, names] of groups) {
    if (!names.length) continue;
    const fs = el("fieldset", { "data-group": title.toLowerCase() }, [el("legend", { text: title })]);
    for (const name of names) {
      const f = makeField(name, table[name]);
      if (!f) continue;
      fields.set(name, f);
      fs.append(f.node);
    }
    if (title === "Data") fs.append(makeUpload());
    form.append(fs);
  }
  if (speedSlot && "speed" in table) {
    const f = makeField("speed", table.speed);
    if (f) { fields.set("speed", f); speedSlot.replaceChildren(f.node); }
  }
  for (const [name, f] of fields) f.update(current[name]);
  refreshRelevance();

  function refreshRelevance() {
    for (const [name, test] of Object.entries(RELEVANT)) {
      const f = fields.get(name);
      if (f) f.node.hidden = !test(current);
    }
  }

  function emit(name, value, final) {
    current[name] = value;
    const f = fields.get(name);
    if (f) f.setOutput(value);
    refreshRelevance();
    onChange(name, value, final);
  }

  function makeField(name, spec) {
    const id = `ctl-${name}-${++uid}`;
    const helpId = `${id}-help`;
    const label = spec.label || choiceLabel(name);
    const head = el("div", { className: "field-head" });
    const node = el("div", { className: "field", "data-field": name });
    const help = spec.help ? el("span", { id: helpId, className: "help", text: spec.help }) : null;
    const out = el("output", { for: id, "data-testid": `${name}-value` });
    const tag = spec.effect === "reset"
      ? el("span", { className: "restart", text: "↺", title: "Changing this starts training again",
        "aria-label": "(restarts training)" })
      : null;

    const kind = sliderKind(name, spec);
    let max = spec.max;
    let update, setOutput = (v) => { out.textContent = displayValue(name, spec, v); };

    if (kind) {
      const input = el("input", {
        type: "range", id, name, "data-testid": name, "aria-describedby": help ? helpId : null,
        min: kind === "linear" && spec.type === "int" ? spec.min : 0,
        max: kind === "linear" && spec.type === "int" ? max : STEPS,
        step: 1,
      });
      const labelEl = el("label", { for: id, text: label, title: spec.help || null });
      head.append(labelEl);
      if (tag) head.append(tag);
      head.append(out);
      const scale = el("div", { className: "scale", "aria-hidden": "true" }, [
        el("span", { text: displayValue(name, spec, spec.min) }),
        el("span", { text: displayValue(name, spec, max) }),
      ]);
      node.append(head, input);
      if (kind === "log" || kind === "zerolog") node.append(scale);  // the ends of a log scale are worth a label
      const valueOf = () => fromPosition(kind, spec, Number(input.value), max);
      input.addEventListener("input", () => emit(name, valueOf(), false));
      input.addEventListener("change", () => emit(name, valueOf(), true));
      update = (v) => {
        if (v === undefined || v === null) return;
        input.value = String(toPosition(kind, spec, v, max));
        setOutput(v);
        input.setAttribute("aria-valuetext", displayValue(name, spec, v));
      };
      const baseSetOutput = setOutput;
      setOutput = (v) => { baseSetOutput(v); input.setAttribute("aria-valuetext", displayValue(name, spec, v)); };
      node.limit = (newMax) => {
        if (!(newMax >= spec.min) || newMax === max) return;
        max = newMax;
        if (kind === "linear" && spec.type === "int") input.max = String(max);
        scale.lastChild.textContent = displayValue(name, spec, max);
        update(current[name]);
      };
    } else if (spec.type === "float" || spec.type === "int") {
      const input = el("input", {
        type: "number", id, name, "data-testid": name, "aria-describedby": help ? helpId : null,
        min: spec.min ?? null, max: spec.max ?? null, step: spec.type === "int" ? 1 : "any",
        inputmode: spec.type === "int" ? "numeric" : "decimal",
      });
      head.append(el("label", { for: id, text: label, title: spec.help || null }));
      if (tag) head.append(tag);
      node.append(head, input);
      input.addEventListener("change", () => {
        const v = spec.type === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
        if (Number.isFinite(v)) emit(name, v, true);
      });
      update = (v) => { if (v !== undefined && v !== null && document.activeElement !== input) input.value = String(v); };
      setOutput = () => {};
    } else if (spec.type === "choice") {
      const select = el("select", { id, name, "data-testid": name, "aria-describedby": help ? helpId : null });
      for (const c of spec.choices || []) select.append(el("option", { value: String(c), text: choiceLabel(c) }));
      head.append(el("label", { for: id, text: label, title: spec.help || null }));
      if (tag) head.append(tag);
      node.append(head, select);
      select.addEventListener("change", () => {
        const c = (spec.choices || []).find((x) => String(x) === select.value);
        emit(name, c === undefined ? select.value : c, true);
      });
      update = (v) => {
        if (v === undefined || v === null) return;
        if (![...select.options].some((o) => o.value === String(v))) {
          select.append(el("option", { value: String(v), text: choiceLabel(v) }));
        }
        select.value = String(v);
      };
      setOutput = () => {};
    } else if (spec.type === "bool") {
      const input = el("input", { type: "checkbox", id, name, "data-testid": name, "aria-describedby": help ? helpId : null });
      const row = el("label", { className: "inline-bool", for: id, title: spec.help || null }, [input, label]);
      node.append(row);
      if (tag) row.append(tag);
      input.addEventListener("change", () => emit(name, input.checked, true));
      update = (v) => { input.checked = !!v; };
      setOutput = () => {};
    } else if (spec.type === "list" && Array.isArray(spec.choices)) {
      // A set of options toggled on and off (input features).
      const box = el("div", { className: "checks", role: "group", "aria-labelledby": `${id}-label` });
      head.append(el("span", { className: "label", id: `${id}-label`, text: label, title: spec.help || null }));
      if (tag) head.append(tag);
      node.append(head, box);
      const inputs = spec.choices.map((c) => {
        const input = el("input", { type: "checkbox", value: String(c), "data-testid": `${name}-${c}` });
        box.append(el("label", {}, [input, featureLabel(c)]));
        input.addEventListener("change", () => {
          // A feature the data lacks (x2 of the 1-D sine set) is shown off but kept in the
          // setting, so it is back when a 2-D set is chosen again.
          const kept = new Set((current[name] || []).map(String));
          const chosen = inputs.filter((i) => (i.disabled ? kept.has(i.value) : i.checked))
            .map((i) => spec.choices.find((x) => String(x) === i.value));
          if (!inputs.some((i) => i.checked && !i.disabled)) { input.checked = true; return; } // at least one input
          emit(name, chosen, true);
        });
        return input;
      });
      const show = (v) => {
        const set = new Set((v || []).map(String));
        for (const i of inputs) {
          i.checked = !i.disabled && set.has(i.value);
        }
      };
      update = (v) => { if (Array.isArray(v)) show(v); };
      // Only the features the data has can be chosen: with one input column, none of x2.
      node.setDims = (dims) => {
        for (const i of inputs) {
          const off = dims === 1 && i.value.includes("x2");
          i.disabled = off;
          i.parentElement.title = off ? "This data set has one input, x1" : "";
          i.parentElement.classList.toggle("off", off);
        }
        show(current[name]);
      };
      setOutput = () => {};
    } else {
      // Any other list: comma-separated text.
      const input = el("input", { type: "text", id, name, "data-testid": name });
      head.append(el("label", { for: id, text: label, title: spec.help || null }));
      if (tag) head.append(tag);
      node.append(head, input);
      input.addEventListener("change", () => {
        const parts = input.value.split(",").map((s) => s.trim()).filter(Boolean);
        emit(name, parts.map((p) => (Number.isFinite(Number(p)) ? Number(p) : p)), true);
      });
      update = (v) => { if (Array.isArray(v)) input.value = v.join(", "); };
      setOutput = () => {};
    }
    if (help) node.append(help);
    return { node, spec, update, setOutput: (v) => setOutput(v), limit: (m) => node.limit && node.limit(m) };
  }

  function makeUpload() {
    const id = `ctl-csv-${++uid}`;
    const input = el("input", { type: "file", id, accept: ".csv,text/csv,text/plain", "data-testid": "csv" });
    const lab = el("label", { for: id, className: "btn btn-small", text: "Upload CSV…",
      title: "Your own data: two feature columns and a label per row" });
    const name = el("span", { className: "file-name", text: "x1, x2, label", "data-testid": "csv-name" });
    csvName = name;
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      if (!file) return;
      // Its name shows once the server has taken it (setCsvName): a refused file must not
      // replace the name of the CSV still in use.
      input.value = "";      // choosing the same file again is a new change
      onChange("__upload_csv__", { file }, true);   // the page checks its size, then reads it
    });
    return el("div", { className: "field upload" }, [input, lab, name]);
  }

  return {
    /** Show values the server accepted (skipping names the user is dragging right now). */
    set(values, skip = new Set()) {
      Object.assign(current, Object.fromEntries(Object.entries(values).filter(([k]) => !skip.has(k))));
      for (const [name, f] of fields) if (!skip.has(name) && name in values) f.update(values[name]);
      refreshRelevance();
    },
    limit(name, max) { const f = fields.get(name); if (f) f.limit(max); },
    /** The data's input columns: features of a column it lacks can't be chosen. */
    setDims(dims) { const f = fields.get("features"); if (f && f.node.setDims) f.node.setDims(dims); },
    /** The name of the CSV in use (after the server took it). */
    setCsvName(text) { if (csvName) { csvName.textContent = text; csvName.title = text; } },
    get(name) { return current[name]; },
    values() { return { ...current }; },
  };
}

// ---- URL <-> settings ----------------------------------------------------------------------
// The same form as backprop.lab.settings.to_query: one pair per setting that differs from its
// default, lists joined by commas, an empty value for None or an empty list, bools as
// true/false.
export function toQuery(values, table) {
  const q = new URLSearchParams();
  for (const [name, spec] of Object.entries(table)) {
    if (!(name in values)) continue;
    const v = values[name];
    if (sameValue(v, spec.default)) continue;
    if (v === null) q.set(name, "");
    else if (Array.isArray(v)) q.set(name, v.join(","));
    else if (typeof v === "boolean") q.set(name, v ? "true" : "false");
    else q.set(name, String(v));
  }
  return q.toString();
}

/** Settings from a query string; names or values that do not parse are reported, not sent. */
export function fromQuery(search, table) {
  const q = new URLSearchParams(search);
  const values = {};
  const bad = [];
  for (const [name, raw] of q) {
    const spec = table[name];
    if (!spec) { bad.push(name); continue; }
    const v = parseValue(raw.trim(), spec);
    if (v === undefined) bad.push(name);
    else values[name] = v;
  }
  return { values, bad };
}

function parseScalar(s, type) {
  if (type === "int") { const n = Number(s); return s !== "" && Number.isInteger(n) ? n : undefined; }
  if (type === "float") { const n = Number(s); return s !== "" && Number.isFinite(n) ? n : undefined; }
  if (type === "bool") {
    const t = s.toLowerCase();
    return t === "true" || t === "1" ? true : t === "false" || t === "0" ? false : undefined;
  }
  return s;
}

function parseValue(raw, spec) {
  if (spec.type === "list") {
    if (raw === "") return spec.nullable ? null : [];
    const itemType = (spec.item && spec.item.type)
      || (Array.isArray(spec.default) && spec.default.length && spec.default.every(Number.isInteger) ? "int" : "choice");
    const xs = raw.split(",").map((p) => parseScalar(p.trim(), itemType === "int" ? "int" : "choice"));
    return xs.includes(undefined) ? undefined : xs;
  }
  if (spec.type === "choice") {
    const c = (spec.choices || []).find((x) => String(x) === raw);
    return c === undefined ? undefined : c;
  }
  return parseScalar(raw, spec.type);
}
