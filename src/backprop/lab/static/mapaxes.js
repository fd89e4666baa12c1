// The stability map's grid on the page: its size, its steps and what its rows vary (the
// server's stability_map message: lrs x the values of one axis). Plain functions of the
// settings, shared by the page (app.js) and the map's drawing (charts.js).

import { fmt, fmtInt } from "./format.js";

/** Grid sizes: learning rates (columns) x rows, and the learning rates' range. */
export const GRIDS = {
  coarse: { cols: 4, rows: 3, lr: [1e-3, 1] },
  default: { cols: 6, rows: 5, lr: [1e-4, 10] },
  fine: { cols: 9, rows: 7, lr: [1e-4, 10] },
};
export const STEPS = [50, 100, 200, 400];
export const DEFAULT_WIDTH = 8;    // a depth map's layers when the network has none now

/** What the rows can vary; `numeric`: drawn in order, the ring on the nearest row. */
export const AXES = {
  batch_size: { label: "batch size", numeric: true, log: true },
  init: { label: "initialisation", numeric: false },
  depth: { label: "hidden layers", numeric: true, log: false },
  momentum: { label: "momentum", numeric: true, log: false },
};

const ROWS = {
  depth: { 3: [0, 2, 4], 5: [0, 1, 2, 3, 4], 7: [0, 1, 2, 3, 4, 5, 6] },
  momentum: { 3: [0, 0.9, 0.99], 5: [0, 0.5, 0.9, 0.95, 0.99], 7: [0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99] },
};

/** n values from lo to hi, evenly on a log scale, each rounded by `round`. */
function logspace(lo, hi, n, round = (x) => Number(x.toPrecision(2))) {
  const a = Math.log10(lo), b = Math.log10(hi);
  return Array.from({ length: n }, (_, k) => round(10 ** (a + ((b - a) * k) / Math.max(1, n - 1))));
}

/** The setting a momentum map varies for this optimiser (null: it has no momentum). */
export function momentumSetting(values) {
  if (values.optimizer === "momentum") return "momentum";
  if (values.optimizer === "adam" || values.optimizer === "adamw") return "beta1";
  return null;
}

/** The stability_map message for a grid size, an axis and a number of steps. */
export function mapRequest(grid, axis, steps, values, table, nTrain) {
  const g = GRIDS[grid] || GRIDS.default;
  const lrs = logspace(g.lr[0], g.lr[1], g.cols);
  let rows;
  if (axis === "init") rows = [...((table.init || {}).choices || [])];   // the menu, whatever the size
  else if (axis === "batch_size") {
    const top = Number.isFinite(nTrain) && nTrain > 0 ? Math.min(256, nTrain) : 256;
    rows = [...new Set(logspace(1, 256, g.rows, Math.round).map((b) => Math.min(top, b)))];
  } else rows = ROWS[axis][g.rows];
  return { type: "stability_map", lrs, axis, values: rows, steps };
}

/** The value of `axis` the current settings have (the ring's row), or null. */
export function currentValue(axis, values) {
  if (axis === "init") return values.init;
  if (axis === "depth") return (values.hidden || []).length;
  if (axis === "momentum") { const s = momentumSetting(values); return s ? values[s] : null; }
  return values.batch_size;
}

/** The settings that using a cell (lr, axis value) changes. */
export function pickChanges(lr, axis, value, values) {
  if (axis === "init") return { lr, init: value };
  if (axis === "depth") {
    const width = (values.hidden || [])[0] || DEFAULT_WIDTH;
    return { lr, hidden: Array(value).fill(width) };
  }
  if (axis === "momentum") { const s = momentumSetting(values); return s ? { lr, [s]: value } : { lr }; }
  return { lr, batch_size: value };
}

/** Settings a map over `axis` varies (a change to them does not make it out of date). */
export function axisSettings(axis) {
  return { batch_size: ["batch_size"], init: ["init"], depth: ["hidden", "activations"],
    momentum: ["momentum", "beta1"] }[axis] || [];
}

/** A row's value in words, for ticks and tooltips. */
export function showValue(axis, v) {
  if (axis === "init") return String(v).replace("_", " ");
  if (axis === "momentum") return fmt(v, 3);
  return fmtInt(v);
}

/** What the rows of a map over `axis` mean, for the settings now (shown under the map). */
export function axisNote(axis, values) {
  if (axis === "init") return "Rows: every initialisation of the menu, whatever the grid (a choice, not a number: the lab has no init scale).";
  if (axis === "depth") {
    const width = (values.hidden || [])[0] || DEFAULT_WIDTH;
    return `Rows: 0 to 6 hidden layers, each of ${width} neurons (your first layer's width).`;
  }
  if (axis === "momentum") {
    const s = momentumSetting(values);
    if (s === "momentum") return "Rows: SGD+momentum's momentum, the share of the last update kept in the next.";
    if (s === "beta1") return `Rows: ${values.optimizer === "adamw" ? "AdamW" : "Adam"}'s beta1, the decay of its running mean of gradients (its momentum).`;
    return `Rows: momentum, which ${values.optimizer === "rmsprop" ? "RMSprop" : "plain SGD"} does not have here: choose SGD+momentum, Adam or AdamW.`;
  }
  return "Rows: the batch size (at most the training set).";
}
