// The lab's charts, drawn on plain canvases: loss curves, decision boundary, gradient bars,
// doctor findings and the stability map. Each view keeps its own last data so it can redraw on
// resize or hover without waiting for the server.

import { AXES, currentValue, showValue } from "./mapaxes.js";
import {
  CLASS_COLOURS, NEG, POS, clamp, fitCanvas, fmt, fmtInt, goodness, mix, num, rgb,
} from "./format.js";

const INK = "#16202e", INK2 = "#4a5567", INK3 = "#7a8597", GRID = "#eceff4", AXIS = "#c9d0db";
const TRAIN = "#1f3f8f", TEST = "#e8772e", DANGER = "#c62f2f";
const FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

// ---- tooltip ---------------------------------------------------------------------------------
export const tooltip = {
  node: null,
  owner: null,
  show(owner, clientX, clientY, text) {
    const t = this.node || (this.node = document.getElementById("tooltip"));
    this.owner = owner;
    t.textContent = text;
    t.hidden = false;
    const pad = 14;
    const r = t.getBoundingClientRect();
    let x = clientX + pad, y = clientY + pad;
    if (x + r.width > window.innerWidth - 4) x = clientX - r.width - pad;
    if (y + r.height > window.innerHeight - 4) y = clientY - r.height - pad;
    t.style.left = `${Math.max(4, x)}px`;
    t.style.top = `${Math.max(4, y)}px`;
  },
  hide(owner) {
    if (this.node && (owner === undefined || owner === this.owner)) { this.node.hidden = true; this.owner = null; }
  },
};

// ---- axis helpers ----------------------------------------------------------------------------
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const decades = [];
  for (let k = a; k <= b; k++) decades.push(10 ** k);
  let ticks = decades.filter((v) => v >= lo * 0.999 && v <= hi * 1.001);
  if (ticks.length < 3) {
    ticks = [];
    for (let k = a; k <= b; k++) for (const m of [1, 2, 5]) {
      const v = m * 10 ** k;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  if (ticks.length < 2) {
    ticks = niceTicks(lo, hi, 3).filter((v) => v > 0);
  }
  return ticks;
}

// ---- loss chart ------------------------------------------------------------------------------
export class LossChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.train = [];
    this.test = [];
    this.log = true;
    this.diverged = null;
    this.hoverX = null;
    canvas.addEventListener("mousemove", (e) => { this.hoverX = e.offsetX; this.hoverEvent = e; this.draw(); });
    canvas.addEventListener("mouseleave", () => { this.hoverX = null; tooltip.hide(this); this.draw(); });
  }

  update(train, test, diverged) {
    if (train) this.train = train.map(([s, l]) => [num(s), num(l)]);
    if (test) this.test = test.map(([s, l]) => [num(s), num(l)]);
    this.diverged = diverged || null;
    this.draw();
  }

  clear() { this.train = []; this.test = []; this.diverged = null; this.draw(); }

  draw() {
    const [ctx, w, h] = fitCanvas(this.canvas);
    const m = { l: 48, r: 12, t: 10, b: 24 };
    const pw = w - m.l - m.r, ph = h - m.t - m.b;
    const all = [...this.train, ...this.test];
    ctx.font = FONT;
    if (!all.some((p) => p[0] > 0)) {     // nothing trained yet: a hint instead of an empty axis
      ctx.fillStyle = INK3; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      wrapText(ctx, "Press Play (or Step) to train: the loss on the training and test data appears here.", w / 2, h / 2, w - 24);
      return;
    }
    const steps = all.map((p) => p[0]);
    let x0 = Math.min(...steps), x1 = Math.max(...steps);
    if (x1 <= x0) x1 = x0 + 1;
    const finite = all.map((p) => p[1]).filter((v) => Number.isFinite(v) && (!this.log || v > 0));
    let y0, y1;
    if (!finite.length) { y0 = this.log ? 0.1 : 0; y1 = this.log ? 10 : 1; }
    else if (this.log) {
      y0 = Math.min(...finite); y1 = Math.max(...finite);
      if (y1 / y0 < 1.5) { y0 /= 1.25; y1 *= 1.25; }
      const pad = (Math.log10(y1) - Math.log10(y0)) * 0.06;
      y0 = 10 ** (Math.log10(y0) - pad); y1 = 10 ** (Math.log10(y1) + pad);
    } else {
      y0 = 0; y1 = Math.max(...finite) * 1.06 || 1;
    }
    const X = (s) => m.l + ((s - x0) / (x1 - x0)) * pw;
    const Y = this.log
      ? (v) => m.t + ph - ((Math.log10(v) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * ph
      : (v) => m.t + ph - ((v - y0) / (y1 - y0)) * ph;
    this.scale = { X, x0, x1, m, pw };

    // grid + y ticks
    const yt = this.log ? logTicks(y0, y1) : niceTicks(y0, y1, 4);
    ctx.strokeStyle = GRID; ctx.lineWidth = 1; ctx.fillStyle = INK3;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const v of yt) {
      const y = Math.round(Y(v)) + 0.5;
      if (y < m.t - 1 || y > m.t + ph + 1) continue;
      ctx.beginPath(); ctx.moveTo(m.l, y); ctx.lineTo(m.l + pw, y); ctx.stroke();
      ctx.fillText(fmt(v, 2), m.l - 6, y);
    }
    // x ticks
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const v of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 90)))) {
      if (!Number.isInteger(v)) continue;
      const x = X(v);
      ctx.fillText(fmtInt(v), x, m.t + ph + 6);
    }
    ctx.strokeStyle = AXIS;
    ctx.beginPath(); ctx.moveTo(m.l, m.t + ph + 0.5); ctx.lineTo(m.l + pw, m.t + ph + 0.5); ctx.stroke();
    ctx.fillStyle = INK3; ctx.textAlign = "right"; ctx.textBaseline = "alphabetic";
    ctx.fillText("step", m.l + pw, m.t + ph - 4);

    const clipY = (v) => clamp(v, m.t, m.t + ph);
    const line = (pts, colour, width) => {
      ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.lineJoin = "round";
      ctx.beginPath();
      let pen = false;
      for (const [s, v] of pts) {
        if (!Number.isFinite(v) || (this.log && v <= 0)) { pen = false; continue; }
        const x = X(s), y = clipY(Y(v));
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
      if (pts.length === 1 && Number.isFinite(pts[0][1])) {
        ctx.fillStyle = colour; ctx.beginPath(); ctx.arc(X(pts[0][0]), clipY(Y(pts[0][1])), 2.5, 0, 7); ctx.fill();
      }
    };
    ctx.save();
    ctx.beginPath(); ctx.rect(m.l, m.t - 2, pw + 2, ph + 4); ctx.clip();
    line(this.train, TRAIN, 1.5);
    line(this.test, TEST, 2);
    ctx.restore();

    // The first non-finite loss: a red cross at the top, and a marker line.
    const bad = all.find((p) => !Number.isFinite(p[1]));
    const divStep = this.diverged ? num(this.diverged.step) : bad ? bad[0] : null;
    if (divStep !== null && Number.isFinite(divStep)) {
      const x = X(clamp(divStep, x0, x1));
      ctx.strokeStyle = DANGER; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x, m.t); ctx.lineTo(x, m.t + ph); ctx.stroke(); ctx.setLineDash([]);
      ctx.lineWidth = 2.5;
      ctx.beginPath(); ctx.moveTo(x - 5, m.t + 2); ctx.lineTo(x + 5, m.t + 12);
      ctx.moveTo(x + 5, m.t + 2); ctx.lineTo(x - 5, m.t + 12); ctx.stroke();
      ctx.fillStyle = DANGER; ctx.font = "600 " + FONT; ctx.textBaseline = "top";
      ctx.textAlign = x > m.l + pw - 80 ? "right" : "left";
      ctx.fillText("diverged", x + (ctx.textAlign === "left" ? 8 : -8), m.t + 2);
      ctx.font = FONT;
    }

    // hover: nearest step, with both curves' values
    if (this.hoverX !== null && this.hoverX >= m.l - 4 && this.hoverX <= m.l + pw + 4) {
      const s = x0 + ((this.hoverX - m.l) / pw) * (x1 - x0);
      const near = (pts) => {
        let best = null;
        for (const p of pts) if (!best || Math.abs(p[0] - s) < Math.abs(best[0] - s)) best = p;
        return best;
      };
      const a = near(this.train), b = near(this.test);
      const ref = a || b;
      const x = X(ref[0]);
      ctx.strokeStyle = "#9aa3b2"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x + 0.5, m.t); ctx.lineTo(x + 0.5, m.t + ph); ctx.stroke();
      const dot = (p, c) => {
        if (!p || !Number.isFinite(p[1]) || (this.log && p[1] <= 0)) return;
        ctx.fillStyle = "#fff"; ctx.strokeStyle = c; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(X(p[0]), clipY(Y(p[1])), 3.5, 0, 7); ctx.fill(); ctx.stroke();
      };
      dot(a, TRAIN); dot(b, TEST);
      const lines = [`step ${fmtInt(ref[0])}`];
      if (a) lines.push(`train ${fmt(a[1], 4)}${a[0] !== ref[0] ? ` (step ${fmtInt(a[0])})` : ""}`);
      if (b) lines.push(`test ${fmt(b[1], 4)}${b[0] !== ref[0] ? ` (step ${fmtInt(b[0])})` : ""}`);
      const r = this.canvas.getBoundingClientRect();
      tooltip.show(this, r.left + x, r.top + m.t + 4, lines.join("\n"));
    }
  }
}

/** Centred text broken into lines that fit `width` (a placeholder on a phone is not cut off). */
function wrapText(ctx, text, x, y, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) { lines.push(line); line = word; } else line = next;
  }
  if (line) lines.push(line);
  const lh = 16;
  lines.forEach((l, i) => ctx.fillText(l, x, y + (i - (lines.length - 1) / 2) * lh));
}

// ---- decision boundary / regression surface ----------------------------------------------------
// The server's boundary: {dims: 1|2, res, x: [lo, hi], y?: [lo, hi], kind: "classification" |
// "regression", classes, values: one grid per class (classification, softmax probabilities) or
// one grid (regression), range?: [min, max] of the targets}. Grid row i is y = lo + (i + .5) dy,
// bottom to top, column j is x likewise. Points: {dims, train: [[x1, x2, label]] or [[x, y]], test}.
const PAPER = [246, 247, 250];

export class BoundaryView {
  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.boundary = null;
    this.points = null;
    this.showTest = true;
    this.hover = null;
    this.image = document.createElement("canvas");
    this.focus = null;     // {picture: canvas, title, words}: a hidden neuron's picture, shown large
    canvas.addEventListener("mousemove", (e) => { this.hover = [e.offsetX, e.offsetY, e.clientX, e.clientY]; this.draw(); });
    canvas.addEventListener("mouseleave", () => { this.hover = null; tooltip.hide(this); this.draw(); });
  }

  /** New boundary (null: no 2-D picture for this data) and, when the data changed, points. */
  update(boundary, points) {
    this.received = true;
    if (points !== undefined) this.points = points;
    this.boundary = boundary || null;
    this.renderImage();
    this.draw();
  }

  get regression() { return !!this.boundary && this.boundary.kind === "regression"; }
  get dims() { return this.boundary ? this.boundary.dims : (this.points && this.points.dims) || 2; }

  // value scale for regression colours: the largest |target|, so the surface and points agree
  valueScale() {
    const r = this.boundary && this.boundary.range;
    if (Array.isArray(r)) return Math.max(Math.abs(num(r[0])), Math.abs(num(r[1]))) || 1;
    return 1;
  }

  // One pixel per grid cell; drawn scaled up with smoothing for a soft map.
  renderImage() {
    const b = this.boundary;
    if (!b || b.dims !== 2 || !Array.isArray(b.values) || !b.values.length) return;
    const grids = b.values;
    const rows = grids[0].length, cols = grids[0][0].length;
    const img = this.image;
    img.width = cols; img.height = rows;
    const ictx = img.getContext("2d");
    const data = ictx.createImageData(cols, rows);
    const k = grids.length;
    const scale = this.valueScale();
    for (let i = 0; i < rows; i++) {
      const py = rows - 1 - i;    // grid rows go up, canvas rows go down
      for (let j = 0; j < cols; j++) {
        let c;
        if (this.regression) {
          const v = grids[0][i][j];
          if (v === null) c = [214, 216, 222];
          else {
            const t = clamp(num(v) / scale, -1, 1);
            c = mix(PAPER, t >= 0 ? POS : NEG, 0.7 * Math.abs(t));
          }
        } else {
          // blend the class colours by probability, paler where the network is unsure
          let acc = [0, 0, 0], top = 0, bad = false;
          for (let m = 0; m < k; m++) {
            const v = grids[m][i][j];
            if (v === null) { bad = true; break; }
            const p = num(v);
            const cc = CLASS_COLOURS[m % CLASS_COLOURS.length];
            acc = [acc[0] + cc[0] * p, acc[1] + cc[1] * p, acc[2] + cc[2] * p];
            top = Math.max(top, p);
          }
          if (bad) c = [214, 216, 222];
          else {
            const certainty = k > 1 ? clamp((top - 1 / k) / (1 - 1 / k), 0, 1) : 0;
            c = mix(PAPER, acc, 0.16 + 0.52 * certainty);
          }
        }
        const o = (py * cols + j) * 4;
        data.data[o] = c[0]; data.data[o + 1] = c[1]; data.data[o + 2] = c[2]; data.data[o + 3] = 255;
      }
    }
    ictx.putImageData(data, 0, 0);
  }

  extent() {
    const b = this.boundary;
    const xs = b ? b.x.map(num) : [-1, 1];
    if (b && b.dims === 2) return [xs[0], xs[1], num(b.y[0]), num(b.y[1])];
    // 1-D regression: the targets' range with a margin, widened to the curve where it is sane
    let lo = Infinity, hi = -Infinity;
    for (const set of ["train", "test"]) for (const p of (this.points && this.points[set]) || []) {
      lo = Math.min(lo, num(p[1])); hi = Math.max(hi, num(p[1]));
    }
    if (!Number.isFinite(lo)) { lo = -1; hi = 1; }
    const pad = Math.max(1e-3, (hi - lo) * 0.15);
    return [xs[0], xs[1], lo - pad, hi + pad];
  }

  draw() {
    const [ctx, w, h] = fitCanvas(this.canvas);
    const b = this.boundary;
    ctx.font = FONT;
    ctx.fillStyle = "#f6f7fa"; ctx.fillRect(0, 0, w, h);
    if (!b) {
      ctx.fillStyle = INK3; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.fillText(this.received ? "No 2-D picture: this data has more than two inputs." : "Waiting for the server…", w / 2, h / 2);
      if (this.caption) this.caption.textContent = "";
      return;
    }
    const is1d = b.dims === 1;
    const [xa, xb, ya, yb] = this.extent();
    const X = (x) => ((x - xa) / (xb - xa)) * w;
    const Y = (y) => h - ((y - ya) / (yb - ya)) * h;

    const focus = this.focus && this.focus.picture;
    this.canvas.dataset.showing = focus ? this.focus.title : "boundary";
    if (focus || (!is1d && this.image.width > 0)) {
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(focus || this.image, 0, 0, w, h);
    }
    // light grid at whole numbers
    ctx.strokeStyle = "rgba(22,32,46,0.07)"; ctx.lineWidth = 1;
    const step = (lo, hi) => { const s = niceTicks(lo, hi, 4); return s.length > 1 ? s : []; };
    for (const x of step(xa, xb)) { const px = Math.round(X(x)) + 0.5; ctx.beginPath(); ctx.moveTo(px, 0); ctx.lineTo(px, h); ctx.stroke(); }
    for (const y of step(ya, yb)) { const py = Math.round(Y(y)) + 0.5; ctx.beginPath(); ctx.moveTo(0, py); ctx.lineTo(w, py); ctx.stroke(); }

    const scale = this.valueScale();
    const pointColour = (label) => {
      if (this.regression) {
        const t = clamp(label / scale, -1, 1);
        return mix([120, 126, 140], t >= 0 ? POS : NEG, Math.abs(t));
      }
      return CLASS_COLOURS[((label | 0) % CLASS_COLOURS.length + CLASS_COLOURS.length) % CLASS_COLOURS.length];
    };
    const r = w < 260 ? 2.6 : 3.3;
    const drawSet = (pts, hollow) => {
      for (const p of pts || []) {
        const px = X(num(p[0])), py = Y(num(p[1]));
        const c = is1d ? [74, 85, 103] : pointColour(num(p[2]));
        ctx.beginPath(); ctx.arc(px, py, r, 0, 7);
        if (hollow) { ctx.fillStyle = "#fff"; ctx.fill(); ctx.strokeStyle = rgb(c); ctx.lineWidth = 1.5; ctx.stroke(); }
        else { ctx.fillStyle = rgb(c); ctx.fill(); ctx.strokeStyle = "#fff"; ctx.lineWidth = 1; ctx.stroke(); }
      }
    };
    if (this.points) {
      drawSet(this.points.train, false);
      if (this.showTest) drawSet(this.points.test, true);
    }
    if (is1d) {
      // regression on one input: the network's curve over the points
      const v = b.values[0], n = v.length;
      ctx.strokeStyle = rgb(POS); ctx.lineWidth = 2.5; ctx.lineJoin = "round"; ctx.beginPath();
      let pen = false;
      for (let i = 0; i < n; i++) {
        if (v[i] === null) { pen = false; continue; }
        const x = X(xa + ((i + 0.5) / n) * (xb - xa)), y = clamp(Y(num(v[i])), -20, h + 20);
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
    }
    ctx.strokeStyle = "rgba(22,32,46,0.18)"; ctx.lineWidth = 1; ctx.strokeRect(0.5, 0.5, w - 1, h - 1);

    // axis extents
    ctx.fillStyle = "rgba(22,32,46,0.55)"; ctx.textBaseline = "bottom";
    ctx.textAlign = "left"; ctx.fillText(fmt(xa, 2), 4, h - 3);
    ctx.textAlign = "right"; ctx.fillText(fmt(xb, 2), w - 4, h - 3);
    ctx.textBaseline = "top"; ctx.textAlign = "left"; ctx.fillText(fmt(yb, 2), 4, 3);

    if (this.hover) this.drawHover(xa, xb, ya, yb, w, h);
    if (this.caption) this.caption.textContent = this.captionText();
  }

  /** Show a hidden neuron's picture instead of the boundary (null: the boundary again). */
  setFocus(focus) {
    this.focus = focus;
    this.draw();
  }

  captionText() {
    if (this.focus && this.focus.picture) return `${this.focus.title}: ${this.focus.words}. Dots: train, rings: test.`;
    if (this.dims === 1) return "The network's prediction (line) over the data (dots: train, rings: test).";
    if (this.regression) return "Predicted value: blue positive, orange negative. Dots: train, rings: test.";
    return "Shade: the class the network predicts, paler where it is unsure. Dots: train, rings: test.";
  }

  drawHover(xa, xb, ya, yb, w, h) {
    const [ox, oy, cx, cy] = this.hover;
    const b = this.boundary;
    const x = xa + (ox / w) * (xb - xa), y = ya + ((h - oy) / h) * (yb - ya);
    const lines = [];
    const cell = (lo, hi, v, n) => clamp(Math.floor(((v - lo) / (hi - lo)) * n), 0, n - 1);
    if (b.dims === 1) {
      const v = b.values[0];
      lines.push(`x = ${fmt(x, 3)}`, `prediction ${fmt(v[cell(xa, xb, x, v.length)], 4)}`);
    } else {
      const rows = b.values[0].length, cols = b.values[0][0].length;
      const i = cell(ya, yb, y, rows), j = cell(xa, xb, x, cols);
      lines.push(`x₁ = ${fmt(x, 3)}, x₂ = ${fmt(y, 3)}`);
      if (this.regression) lines.push(`prediction ${fmt(b.values[0][i][j], 4)}`);
      else {
        let best = 0;
        b.values.forEach((g, m) => { if (num(g[i][j]) > num(b.values[best][i][j])) best = m; });
        const name = Array.isArray(this.labels) && this.labels[best] !== undefined ? String(this.labels[best]) : `class ${best}`;
        lines.push(`${name} (p = ${fmt(b.values[best][i][j], 3)})`);
      }
    }
    tooltip.show(this, cx, cy, lines.join("\n"));
  }
}

// ---- per-layer gradient norms ---------------------------------------------------------------------
const G_LO = -8, G_HI = 4; // log10 range of the bars

export function renderGradBars(node, norms) {
  if (!Array.isArray(norms) || !norms.length) {
    node.innerHTML = '<p class="grad-empty">Gradient norms appear once training starts.</p>';
    return;
  }
  const key = norms.map((n) => n.layer).join("|");
  if (node.dataset.key !== key) {
    node.dataset.key = key;
    node.replaceChildren();
    for (const n of norms) {
      const row = document.createElement("div");
      row.className = "grad-row";
      row.innerHTML = '<span class="name"></span><span class="grad-track"><span class="grad-fill"></span></span><span class="val"></span>';
      row.querySelector(".name").textContent = n.label || n.layer;
      row.querySelector(".name").title = n.layer;
      node.append(row);
    }
    const axis = document.createElement("div");
    axis.className = "grad-axis";
    axis.innerHTML = '<span></span><span class="ticks"></span><span></span>';
    const ticks = axis.querySelector(".ticks");
    for (let k = G_LO; k <= G_HI; k += 4) {
      const s = document.createElement("span");
      s.style.left = `${((k - G_LO) / (G_HI - G_LO)) * 100}%`;
      s.textContent = k === 0 ? "1" : `1e${k}`;
      if (k === G_LO) s.style.transform = "none";
      if (k === G_HI) s.style.transform = "translateX(-100%)";
      ticks.append(s);
    }
    node.append(axis);
  }
  const rows = node.querySelectorAll(".grad-row");
  norms.forEach((n, i) => {
    const fill = rows[i].querySelector(".grad-fill");
    if (n.norm === null || n.norm === undefined) {   // no gradient yet (before the first step)
      fill.style.width = "0%";
      fill.classList.remove("low", "high");
      rows[i].querySelector(".val").textContent = "–";
      rows[i].title = `${n.layer}: no gradient yet`;
      return;
    }
    const v = num(n.norm);
    const t = Number.isFinite(v) ? (v > 0 ? (Math.log10(v) - G_LO) / (G_HI - G_LO) : 0) : 1;
    fill.style.width = `${clamp(t, 0, 1) * 100}%`;
    fill.classList.toggle("low", Number.isFinite(v) && v < 1e-5);
    fill.classList.toggle("high", !Number.isFinite(v) || v > 1e2);
    rows[i].querySelector(".val").textContent = fmt(v, 3);
    rows[i].title = `${n.layer}: gradient norm ${fmt(v, 4)}`;
  });
}

// ---- doctor findings --------------------------------------------------------------------------------
export function renderFindings(node, findings, stepsSoFar) {
  const list = Array.isArray(findings) ? findings : [];
  const key = JSON.stringify(list.map((f) => [f.name, f.severity, f.summary, f.advice]));
  if (node.dataset.key === key && list.length) return;
  node.dataset.key = key;
  node.replaceChildren();
  if (!list.length) {
    const li = document.createElement("li");
    li.className = "finding none";
    li.textContent = stepsSoFar > 0 ? "No problems found so far." : "Nothing to report yet.";
    node.append(li);
    return;
  }
  const order = { error: 0, warning: 1, info: 2 };
  for (const f of [...list].sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3))) {
    const li = document.createElement("li");
    li.className = `finding ${f.severity || "info"}`;
    li.dataset.name = f.name || "";
    const sev = document.createElement("span"); sev.className = "sev"; sev.textContent = f.severity || "info";
    const sum = document.createElement("span"); sum.className = "summary"; sum.textContent = f.summary || f.name;
    li.append(sev, sum);
    if (f.advice) { const a = document.createElement("span"); a.className = "advice"; a.textContent = f.advice; li.append(a); }
    node.append(li);
  }
}

// ---- stability map -------------------------------------------------------------------------------
// Columns: learning rates; rows: the values of one axis (mapaxes.js: batch size, initialisation,
// depth or momentum). A cell is keyed by its column and row index.
export class StabilityMap {
  constructor(canvas, onPick) {
    this.canvas = canvas;
    this.onPick = onPick;     // (lr, value, axis)
    this.cells = new Map();   // "i|j" -> cell
    this.lrs = []; this.rows = []; this.axis = "batch_size";
    this.settings = null;     // the session's settings: the ring marks them
    this.running = false;
    this.hover = null;
    canvas.addEventListener("mousemove", (e) => { this.hover = [e.offsetX, e.offsetY, e.clientX, e.clientY]; this.draw(); });
    canvas.addEventListener("mouseleave", () => { this.hover = null; tooltip.hide(this); this.draw(); });
    canvas.addEventListener("click", (e) => {
      const c = this.cellAt(e.offsetX, e.offsetY);
      if (c && this.onPick) this.onPick(c.lr, c.value, this.axis);
    });
    // Keyboard: Tab to the map, arrows move between cells, Enter or Space uses one.
    this.focus = null;      // [i, j] of the cell chosen with the keyboard
    canvas.tabIndex = 0;
    canvas.addEventListener("keydown", (e) => this.onKey(e));
    canvas.addEventListener("blur", () => { this.focus = null; tooltip.hide(this); this.draw(); });
  }

  onKey(e) {
    if (!this.lrs.length) return;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (e.key in moves) {
      const [di, dj] = moves[e.key];
      const [i, j] = this.focus || [0, 0];
      this.focus = this.focus
        ? [clamp(i + di, 0, this.lrs.length - 1), clamp(j + dj, 0, this.rows.length - 1)] : [0, 0];
    } else if ((e.key === "Enter" || e.key === " ") && this.focus) {
      const [i, j] = this.focus;
      if (this.onPick) this.onPick(this.lrs[i], this.rows[j], this.axis);
    } else return;
    e.preventDefault();
    this.draw();
  }

  /** A new map: its learning rates, its rows (values of `axis`, in the server's order). */
  start(lrs, rows, axis = "batch_size") {
    this.cells.clear();
    this.stale = null;      // why the map no longer fits the settings (set by the page)
    this.axis = axis in AXES ? axis : "batch_size";
    this.lrs = (lrs || []).map(num);
    this.rows = (rows || []).map((v) => (AXES[this.axis].numeric ? num(v) : v));
    this.running = true;
    this.draw();
  }

  add(cell) {
    const i = cell.i, j = cell.j;
    if (!Number.isInteger(i) || !Number.isInteger(j) || i >= this.lrs.length || j >= this.rows.length) return;
    this.cells.set(`${i}|${j}`, { ...cell, lr: this.lrs[i], value: this.rows[j] });
    this.draw();
  }

  done() { this.running = false; this.draw(); }

  layout() {
    const r = this.canvas.getBoundingClientRect();
    const m = { l: this.axis === "init" ? 74 : 44, r: 8, t: 8, b: 34 };
    const pw = r.width - m.l - m.r, ph = r.height - m.t - m.b;
    const cw = pw / Math.max(1, this.lrs.length), ch = ph / Math.max(1, this.rows.length);
    return { m, pw, ph, cw, ch, w: r.width, h: r.height };
  }

  cell(i, j) {
    return this.cells.get(`${i}|${j}`) || { lr: this.lrs[i], value: this.rows[j], pending: true };
  }

  cellAt(x, y) {
    if (!this.lrs.length) return null;
    const { m, cw, ch } = this.layout();
    const i = Math.floor((x - m.l) / cw), j = this.rows.length - 1 - Math.floor((y - m.t) / ch);
    if (i < 0 || j < 0 || i >= this.lrs.length || j >= this.rows.length) return null;
    return this.cell(i, j);
  }

  /** [i, j] of the cell nearest the session's settings (j null: none of the rows). */
  ringAt() {
    const near = (arr, v, log) => {
      const d = (a) => Math.abs(log ? Math.log(a) - Math.log(v) : a - v);
      return arr.reduce((bi, a, k) => (d(a) < d(arr[bi]) ? k : bi), 0);
    };
    const now = currentValue(this.axis, this.settings);
    const spec = AXES[this.axis];
    let j = null;
    if (!spec.numeric) { const k = this.rows.indexOf(now); j = k < 0 ? null : k; }
    else if (Number.isFinite(num(now)) && !(spec.log && num(now) <= 0)) j = near(this.rows, num(now), spec.log);
    return [near(this.lrs, num(this.settings.lr), true), j];
  }

  draw() {
    const [ctx, w, h] = fitCanvas(this.canvas);
    ctx.font = FONT;
    if (!this.lrs.length) {
      ctx.fillStyle = "#f6f7fa"; ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = INK3; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      wrapText(ctx, this.running ? "Starting short runs…" : "Press Run to map where training is stable.", w / 2, h / 2, w - 24);
      return;
    }
    const { m, pw, ph, cw, ch } = this.layout();
    const nr = this.rows.length;
    const losses = [...this.cells.values()].filter((c) => !c.diverged).map((c) => num(c.final_loss)).filter((v) => Number.isFinite(v) && v > 0);
    const lo = losses.length ? Math.log10(Math.min(...losses)) : 0, hi = losses.length ? Math.log10(Math.max(...losses)) : 1;
    for (let i = 0; i < this.lrs.length; i++) {
      for (let j = 0; j < nr; j++) {
        const c = this.cells.get(`${i}|${j}`);
        const x = m.l + i * cw, y = m.t + (nr - 1 - j) * ch;
        if (!c) { ctx.fillStyle = "#eef0f4"; }
        else if (c.diverged || !Number.isFinite(num(c.final_loss))) { ctx.fillStyle = "#7f1d2d"; }
        else {
          const t = hi > lo ? (Math.log10(num(c.final_loss)) - lo) / (hi - lo) : 0;
          ctx.fillStyle = rgb(goodness(t));
        }
        ctx.fillRect(x + 1, y + 1, cw - 2, ch - 2);
        if (c && (c.diverged || !Number.isFinite(num(c.final_loss)))) {
          ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.6;
          const s = Math.min(cw, ch) * 0.18, cx = x + cw / 2, cy = y + ch / 2;
          ctx.beginPath(); ctx.moveTo(cx - s, cy - s); ctx.lineTo(cx + s, cy + s); ctx.moveTo(cx + s, cy - s); ctx.lineTo(cx - s, cy + s); ctx.stroke();
        }
      }
    }
    // the current setting: ring around the nearest cell (none when no row is the setting's)
    if (this.settings) {
      const [i, j] = this.ringAt();
      this.ring = j === null ? null : [i, j];
      if (j !== null) {
        ctx.strokeStyle = INK; ctx.lineWidth = 2;
        ctx.strokeRect(m.l + i * cw + 1.5, m.t + (nr - 1 - j) * ch + 1.5, cw - 3, ch - 3);
      }
    }
    // axes
    ctx.fillStyle = INK3; ctx.textAlign = "center"; ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(this.lrs.length / Math.max(1, Math.floor(pw / 38))));
    this.lrs.forEach((lr, i) => { if (i % every === 0) ctx.fillText(fmt(lr, 2), m.l + (i + 0.5) * cw, m.t + ph + 4); });
    ctx.fillStyle = INK2; ctx.fillText("learning rate →", m.l + pw / 2, m.t + ph + 18);
    ctx.fillStyle = INK3; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const everyB = Math.max(1, Math.ceil(nr / Math.max(1, Math.floor(ph / 16))));
    this.rows.forEach((v, j) => { if (j % everyB === 0) ctx.fillText(showValue(this.axis, v), m.l - 6, m.t + (nr - 1 - j + 0.5) * ch); });
    const label = AXES[this.axis].label;
    ctx.save(); ctx.translate(10, m.t + ph / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center"; ctx.fillStyle = INK2;
    ctx.fillText(AXES[this.axis].numeric ? `${label} →` : label, 0, 0); ctx.restore();

    const describe = (c, how) => [`lr ${fmt(c.lr, 3)}, ${label} ${showValue(this.axis, c.value)}`,
      c.pending ? "running…" : c.diverged ? "diverged" : `final loss ${fmt(c.final_loss, 4)}`,
      `${how} to use these`].join("\n");
    if (this.focus) {
      const [i, j] = this.focus.map((v, k) => Math.min(v, (k ? this.rows : this.lrs).length - 1));
      const x = m.l + i * cw, y = m.t + (nr - 1 - j) * ch;
      ctx.strokeStyle = "#f0b429"; ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, y + 1.5, cw - 3, ch - 3);
      const r = this.canvas.getBoundingClientRect();
      tooltip.show(this, r.left + x + cw / 2, r.top + y + ch / 2, describe(this.cell(i, j), "Enter"));
    } else if (this.hover) {
      const c = this.cellAt(this.hover[0], this.hover[1]);
      if (c) tooltip.show(this, this.hover[2], this.hover[3], describe(c, "click"));
      else tooltip.hide(this);
    }
  }
}
