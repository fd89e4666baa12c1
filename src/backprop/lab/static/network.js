// The network picture: neurons and edges on a canvas. Weight view: edge colour is the weight's
// sign and width its size. Gradient view: edges and neurons coloured by the size of their
// gradient (the blame). Hovering any edge or neuron shows its live value. The +/- buttons for
// layers and neurons and the per-layer activation menus sit on an HTML layer above the canvas.

import {
  CLASS_COLOURS, NEG, POS, choiceLabel, clamp, featureLabel, fitCanvas, fmt, heat, mix, num, rgb,
} from "./format.js";
import { tooltip } from "./charts.js";
import { pictureWords } from "./neurons.js";

/** A touch screen (no hover): the page says "tap" where it would say "hover". */
export const TOUCH = typeof matchMedia === "function" && matchMedia("(hover: none), (pointer: coarse)").matches;
/** Narrow or touch screens: the layer tools go in a list under the picture, 44 px targets. */
const STACKED = "(max-width: 760px), (hover: none), (pointer: coarse)";

const TOOLS_H = 58;   // room above the neurons for the layer tools
const CAPTION_H = 22; // room above the neurons when the tools are in a list below
const INK = "#16202e";

/** Rows of a layer's weight matrix as [out][in], whichever way round the server sent it. */
function asOutIn(w, nIn, nOut) {
  if (!Array.isArray(w) || !w.length) return null;
  if (w.length === nOut && Array.isArray(w[0]) && w[0].length === nIn) return w;
  if (w.length === nIn && Array.isArray(w[0]) && w[0].length === nOut) {
    return Array.from({ length: nOut }, (_, j) => Array.from({ length: nIn }, (_, i) => w[i][j]));
  }
  return null;
}

export class NetworkView {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} tools   overlay for per-layer buttons
   * @param {HTMLElement} countSlot  where the "hidden layers [-] n [+]" control goes
   * @param {{onHidden(list), onActivations(list|null)}} hooks
   */
  constructor(canvas, tools, countSlot, legend, hooks) {
    this.canvas = canvas;
    this.tools = tools;
    this.countSlot = countSlot;
    this.legend = legend;
    this.hooks = hooks;
    this.net = null;
    this.features = ["x1", "x2"];
    this.outputs = null;       // labels for the output neurons
    this.gradView = false;
    this.hover = null;         // [offsetX, offsetY, clientX, clientY]
    this.settings = {};
    this.limits = { maxLayers: 6, minN: 1, maxN: 32, activations: [] };
    this.anim = null;          // step-detail animation state
    this.pictures = null;      // NeuronPictures of the latest frame
    this.pinned = null;        // {l, k}: the hidden neuron tapped (or clicked) to show large
    this.focus = null;         // the neuron shown large now: hovered, else pinned
    this.list = hooks.list || null;   // where the layer tools go on narrow screens
    canvas.addEventListener("mousemove", (e) => { this.hover = [e.offsetX, e.offsetY, e.clientX, e.clientY]; this.draw(); });
    canvas.addEventListener("mouseleave", () => { this.hover = null; tooltip.hide(this); this.draw(); });
    canvas.addEventListener("click", (e) => {
      // a tap (or click) on a hidden neuron pins its picture under the data; again unpins
      this.hover = [e.offsetX, e.offsetY, e.clientX, e.clientY];
      const hit = this.net ? this.hitTest(this.geometry(), e.offsetX, e.offsetY) : null;
      const hidden = hit && hit.kind === "neuron" && hit.l > 0 && hit.l < this.net.sizes.length - 1;
      const same = hidden && this.pinned && this.pinned.l === hit.l && this.pinned.k === hit.k;
      this.pinned = hidden && !same ? { l: hit.l, k: hit.k } : null;
      this.draw();
    });
    this.renderLegend();
  }

  setLimits(table) {
    const h = table.hidden || {};
    this.limits.maxLayers = h.max_len ?? 6;
    this.limits.minLayers = h.min_len ?? 0;
    this.limits.minN = (h.item && h.item.min) ?? 1;
    this.limits.maxN = (h.item && h.item.max) ?? 32;
    this.limits.activations = (table.activations && (table.activations.choices || (table.activations.item || {}).choices))
      || (table.activation && table.activation.choices) || [];
    this.hasActivations = "activations" in table;
  }

  setSettings(values) {
    this.settings = { ...this.settings, ...values };
    if (Array.isArray(values.features)) this.features = values.features;
    this.renderCount();
    this.layoutTools();
  }

  /** The frame's neuron pictures (a NeuronPictures, or null). */
  setPictures(pictures) {
    const had = !!(this.pictures && this.pictures.layers.length);
    this.pictures = pictures;
    if (had !== !!(pictures && pictures.layers.length)) this.renderLegend();
  }

  /** The hidden neuron {l, k} whose picture shows large: the hovered one, else the pinned one. */
  focusOf(hit) {
    const L = this.net ? this.net.sizes.length - 1 : 0;
    if (hit && hit.kind === "neuron" && hit.l > 0 && hit.l < L) return { l: hit.l, k: hit.k };
    return this.pinned && this.pinned.l < L && this.pinned.k < this.net.sizes[this.pinned.l] ? this.pinned : null;
  }

  update(net, outputs) {
    if (net && Array.isArray(net.sizes)) {
      const changed = !this.net || this.net.sizes.join() !== net.sizes.join();
      if (changed && this.anim && this.onAnimStale) this.onAnimStale(); // a step of another network
      if (changed) this.pinned = null;
      this.net = net;
      this.prepare();
      if (changed) this.layoutTools();
    }
    if (outputs) {
      const kindChanged = !this.outputs || this.outputs.kind !== outputs.kind;
      this.outputs = outputs;
      if (kindChanged) this.renderLegend();   // the pictures' words name the task's output
    }
    this.draw();
  }

  // Normalise the weights once per frame (they may come [in][out] or [out][in]).
  prepare() {
    const n = this.net;
    const L = n.sizes.length - 1;
    this.W = []; this.G = [];
    for (let l = 0; l < L; l++) {
      this.W.push(asOutIn(n.weights && n.weights[l], n.sizes[l], n.sizes[l + 1]));
      this.G.push(asOutIn(n.weight_grads && n.weight_grads[l], n.sizes[l], n.sizes[l + 1]));
    }
    // the biggest gradient sets the top of the gradient colour scale (3 decades below it are pale)
    let gmax = 0;
    for (const g of this.G) if (g) for (const row of g) for (const v of row) { const a = Math.abs(num(v)); if (Number.isFinite(a) && a > gmax) gmax = a; }
    this.gmax = gmax;
    // blame of a neuron: the norm of the gradients on its incoming edges (inputs: outgoing)
    this.blame = n.sizes.map((s) => new Array(s).fill(0));
    for (let l = 0; l < L; l++) {
      const g = this.G[l];
      if (!g) continue;
      for (let j = 0; j < g.length; j++) for (let i = 0; i < g[j].length; i++) {
        const v = num(g[j][i]) ** 2;
        this.blame[l + 1][j] += v;
        if (l === 0) this.blame[0][i] += v;
      }
    }
    this.blame = this.blame.map((layer) => layer.map(Math.sqrt));
    this.bmax = Math.max(0, ...this.blame.flat().filter(Number.isFinite));
  }

  // ---- geometry ----------------------------------------------------------------------------
  geometry() {
    const r = this.canvas.getBoundingClientRect();
    const w = r.width, h = r.height;
    const sizes = this.net ? this.net.sizes : [2, 1];
    const L = sizes.length;
    const left = 62, right = 70;
    const xs = sizes.map((_, l) => (L === 1 ? w / 2 : left + (l * (w - left - right)) / (L - 1)));
    const top = (this.stacked ? CAPTION_H : TOOLS_H) + 8, bottom = h - 14;
    // each layer spreads over the height it needs (up to 40 px a neuron), centred
    const spacing = sizes.map((n) => Math.min(40, (bottom - top) / Math.max(1, n)));
    const radii = spacing.map((sp) => clamp(sp * 0.34, 3, 11));
    // hidden neurons with a picture: a square of about the spacing (up to 30 px)
    const sides = spacing.map((sp) => clamp(sp * 0.8, 6, 30));
    const mid = (top + bottom) / 2;
    const pos = sizes.map((n, l) => Array.from({ length: n }, (_, k) => [xs[l], mid + (k - (n - 1) / 2) * spacing[l]]));
    return { w, h, xs, pos, radii, sides, sizes };
  }

  // ---- layer tools (HTML) ---------------------------------------------------------------------
  hiddenList() {
    const h = this.settings.hidden;
    if (Array.isArray(h)) return h;
    return this.net ? this.net.sizes.slice(1, -1) : [];
  }

  renderCount() {
    const hidden = this.hiddenList();
    const slot = this.countSlot;
    if (!slot.firstChild) {
      slot.innerHTML = '<span id="layers-label">Hidden layers</span>'
        + '<button type="button" class="pm" data-testid="remove-layer" aria-label="Remove a hidden layer">−</button>'
        + '<span class="n" data-testid="layer-count" aria-live="polite"></span>'
        + '<button type="button" class="pm" data-testid="add-layer" aria-label="Add a hidden layer">+</button>';
      const [minus, plus] = slot.querySelectorAll("button");
      minus.addEventListener("click", () => {
        const h = this.hiddenList();
        if (h.length > this.limits.minLayers) this.hooks.onHidden(h.slice(0, -1));
      });
      plus.addEventListener("click", () => {
        const h = this.hiddenList();
        if (h.length < this.limits.maxLayers) this.hooks.onHidden([...h, h.length ? h[h.length - 1] : 4]);
      });
    }
    slot.querySelector(".n").textContent = String(hidden.length);
    const [minus, plus] = slot.querySelectorAll("button");
    minus.disabled = hidden.length <= this.limits.minLayers;
    plus.disabled = hidden.length >= this.limits.maxLayers;
  }

  layoutTools() {
    const hidden = this.hiddenList();
    this.stacked = !!this.list && typeof matchMedia === "function" && matchMedia(STACKED).matches;
    const g = this.geometry();
    const tools = this.tools;
    const perLayer = Array.isArray(this.settings.activations) ? this.settings.activations : null;
    const key = JSON.stringify([g.sizes, hidden, perLayer, this.settings.activation, Math.round(g.w), this.stacked]);
    if (tools.dataset.key === key) return;
    tools.dataset.key = key;
    tools.replaceChildren();
    if (this.list) this.list.replaceChildren();
    tools.classList.toggle("stacked", this.stacked);
    if (this.list) this.list.hidden = !this.stacked || !hidden.length;
    const inputs = g.sizes[0];
    // columns closer than a full tool: smaller buttons and menus; the menus go only when
    // even a narrow one would overlap its neighbour's
    const gap = g.xs.length > 1 ? g.xs[1] - g.xs[0] : g.w;
    const compact = gap < 100 && !this.stacked;
    const menus = gap >= 58 || this.stacked;
    tools.classList.toggle("compact", compact);
    const addCaption = (x, text) => {
      const d = document.createElement("div");
      d.className = "layer-tool";
      d.style.left = `${x}px`;
      d.innerHTML = `<span class="cap"></span>`;
      d.querySelector(".cap").textContent = text;
      tools.append(d);
    };
    addCaption(g.xs[0], `${inputs} input${inputs === 1 ? "" : "s"}`);
    hidden.forEach((n, l) => {
      const d = document.createElement("div");
      d.className = "layer-tool";
      d.dataset.layer = String(l);
      if (this.stacked) {          // a row of the list under the picture: caption above the neurons
        addCaption(g.xs[l + 1], `${n}`);
        d.className = "layer-row";
      } else d.style.left = `${g.xs[l + 1]}px`;
      d.innerHTML = `${this.stacked ? `<span class="cap">Hidden layer ${l + 1}</span>` : ""}<div class="row">
          <button type="button" class="pm" data-testid="remove-neuron-${l}" aria-label="Remove a neuron from hidden layer ${l + 1}">−</button>
          <span class="n" title="neurons in hidden layer ${l + 1}">${n}</span>
          <button type="button" class="pm" data-testid="add-neuron-${l}" aria-label="Add a neuron to hidden layer ${l + 1}">+</button>
        </div>`;
      const [minus, plus] = d.querySelectorAll("button");
      minus.disabled = n <= this.limits.minN;
      plus.disabled = n >= this.limits.maxN;
      minus.addEventListener("click", () => this.resize(l, -1));
      plus.addEventListener("click", () => this.resize(l, +1));
      if (this.hasActivations && this.limits.activations.length && menus) {
        const sel = document.createElement("select");
        sel.setAttribute("aria-label", `Activation of hidden layer ${l + 1}`);
        sel.dataset.testid = `activation-${l}`;
        sel.setAttribute("data-testid", `activation-${l}`);
        for (const a of this.limits.activations) {
          const o = document.createElement("option");
          o.value = a; o.textContent = choiceLabel(a);
          sel.append(o);
        }
        sel.value = perLayer ? perLayer[l] : this.settings.activation;
        sel.addEventListener("change", () => {
          const base = perLayer ? [...perLayer] : hidden.map(() => this.settings.activation);
          base[l] = sel.value;
          const uniform = base.every((a) => a === this.settings.activation);
          this.hooks.onActivations(uniform ? null : base);
        });
        d.append(sel);
      }
      (this.stacked ? this.list : tools).append(d);
    });
    addCaption(g.xs[g.xs.length - 1], this.outputCaption());
  }

  outputCaption() {
    const n = this.net ? this.net.sizes[this.net.sizes.length - 1] : 1;
    if (this.outputs && this.outputs.kind === "regression") return "output";
    return n === 1 ? "output" : `${n} classes`;
  }

  resize(layer, delta) {
    const h = [...this.hiddenList()];
    h[layer] = clamp(h[layer] + delta, this.limits.minN, this.limits.maxN);
    this.hooks.onHidden(h);
  }

  renderLegend() {
    if (!this.legend) return;
    this.legend.innerHTML = this.gradView
      ? `<span><i style="background:${rgb(heat(0.15))}"></i>small gradient</span><span><i style="background:${rgb(heat(0.6))}"></i>medium</span><span><i style="background:${rgb(heat(1))}"></i>large (most blame)</span><span>width: size of the gradient</span>`
      : `<span><i style="background:${rgb(POS)}"></i>positive weight</span><span><i style="background:${rgb(NEG)}"></i>negative weight</span><span>width: size of the weight · ${TOUCH ? "tap" : "hover"} for values</span>`;
    if (this.pictures && this.pictures.layers.length) {
      const words = pictureWords(this.gradView, this.outputs && this.outputs.kind === "regression" ? "regression" : "classification", true);
      this.legend.insertAdjacentHTML("beforeend", `<span data-testid="picture-words">squares: ${words} · ${TOUCH ? "tap one" : "hover over one (click to keep it)"} to see it large under the data</span>`);
    }
  }

  setGradView(on) { this.gradView = on; this.renderLegend(); this.draw(); }

  // ---- drawing -------------------------------------------------------------------------------
  gradT(a, top = this.gmax) {
    if (!(top > 0) || !Number.isFinite(a)) return Number.isFinite(a) ? 0 : 1;
    // 3 decades below the largest gradient is the bottom of the scale
    return clamp(1 + Math.log10(Math.max(a, 1e-30) / top) / 3, 0, 1);
  }

  draw() {
    const [ctx, w, h] = fitCanvas(this.canvas);
    if (!this.net) {
      ctx.fillStyle = "#7a8597"; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center";
      ctx.fillText("Waiting for the server…", w / 2, h / 2);
      return;
    }
    const g = this.geometry();
    const { pos, radii } = g;
    const L = g.sizes.length - 1;
    const anim = this.anim;
    const hoverHit = this.hover ? this.hitTest(g, this.hover[0], this.hover[1]) : null;

    // edges
    ctx.lineCap = "round";
    for (let l = 0; l < L; l++) {
      const W = this.W[l], G = this.G[l];
      if (!W) continue;
      const dim = anim && !anim.edgeActive(l);
      for (let j = 0; j < W.length; j++) {
        const [x2, y2] = pos[l + 1][j];
        for (let i = 0; i < W[j].length; i++) {
          const [x1, y1] = pos[l][i];
          const v = num(W[j][i]);
          let colour, width, alpha;
          const animGrad = anim && anim.showGrad(l) && anim.gw[l];
          const upd = anim ? anim.updateEdge(l, j, i) : null;
          if (upd) {
            [colour, width, alpha] = upd;
          } else if (animGrad) {
            const t = this.gradT(Math.abs(num(animGrad[j][i])), anim.gwMax);
            colour = heat(t); width = 0.4 + 3.4 * t; alpha = 0.25 + 0.75 * t;
          } else if (this.gradView && G) {
            const t = this.gradT(Math.abs(num(G[j][i])));
            colour = heat(t); width = 0.4 + 3.4 * t; alpha = 0.25 + 0.75 * t;
          } else if (!Number.isFinite(v)) {
            colour = [198, 47, 47]; width = 1.5; alpha = 0.9;
          } else {
            const a = Math.abs(v);
            colour = v >= 0 ? POS : NEG; width = 0.35 + 3.6 * Math.tanh(a / 1.2); alpha = 0.22 + 0.72 * Math.tanh(a / 0.8);
          }
          if (dim) alpha *= 0.25;
          ctx.strokeStyle = rgb(colour, alpha);
          ctx.lineWidth = width;
          ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
        }
      }
    }
    if (hoverHit && hoverHit.kind === "edge") {
      const [x1, y1] = pos[hoverHit.l][hoverHit.i], [x2, y2] = pos[hoverHit.l + 1][hoverHit.j];
      ctx.strokeStyle = INK; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
    }
    // the pulse of the step animation travelling along the edges
    if (anim) anim.drawPulse(ctx, g);

    // neurons
    const biases = this.net.biases || [];
    for (let l = 0; l <= L; l++) {
      for (let k = 0; k < pos[l].length; k++) {
        const [x, y] = pos[l][k];
        let fill;
        if (this.gradView && !anim) {
          const t = this.bmax > 0 ? clamp(1 + Math.log10(Math.max(this.blame[l][k], 1e-30) / this.bmax) / 3, 0, 1) : 0;
          fill = heat(t);
        } else if (l === 0) {
          fill = [236, 239, 244];
        } else {
          const b = num((biases[l - 1] || [])[k]);
          const t = Number.isFinite(b) ? Math.tanh(Math.abs(b)) : 1;
          fill = mix([255, 255, 255], b >= 0 ? POS : NEG, 0.12 + 0.6 * t);
        }
        if (anim) fill = anim.neuronFill(l, k, fill);
        const picture = !anim && l > 0 && l < L && this.pictures ? this.pictures.canvas(l - 1, k, this.gradView) : null;
        if (picture) {
          // the neuron's own picture over the input plane, in a square
          const side = g.sides[l], pinned = this.pinned && this.pinned.l === l && this.pinned.k === k;
          ctx.imageSmoothingEnabled = true;
          ctx.drawImage(picture, x - side / 2, y - side / 2, side, side);
          ctx.lineWidth = pinned ? 2.5 : 1;
          ctx.strokeStyle = pinned ? INK : "rgba(22,32,46,0.55)";
          ctx.strokeRect(x - side / 2, y - side / 2, side, side);
          continue;
        }
        ctx.beginPath(); ctx.arc(x, y, radii[l], 0, 7);
        ctx.fillStyle = rgb(fill); ctx.fill();
        const isOut = l === L && this.outputs && this.outputs.kind === "classes";
        ctx.lineWidth = isOut ? 2.2 : 1.2;
        ctx.strokeStyle = isOut ? rgb(CLASS_COLOURS[k % CLASS_COLOURS.length]) : "rgba(22,32,46,0.55)";
        ctx.stroke();
        if (anim) anim.drawNumber(ctx, l, k, x, y, radii[l]);
      }
    }
    const focus = this.focusOf(hoverHit);
    const key = focus ? `${focus.l}:${focus.k}` : "";
    if (this.canvas.dataset.focus !== key) {
      this.canvas.dataset.focus = key;
      if (this.hooks.onFocus) this.hooks.onFocus(focus);
    }
    if (hoverHit && hoverHit.kind === "neuron") {
      const [x, y] = pos[hoverHit.l][hoverHit.k];
      ctx.strokeStyle = INK; ctx.lineWidth = 2.5;
      const hasPicture = !anim && hoverHit.l > 0 && hoverHit.l < L && this.pictures && this.pictures.has(hoverHit.l - 1, hoverHit.k);
      if (hasPicture) {
        const half = g.sides[hoverHit.l] / 2 + 2;
        ctx.strokeRect(x - half, y - half, 2 * half, 2 * half);
      } else { ctx.beginPath(); ctx.arc(x, y, radii[hoverHit.l] + 3, 0, 7); ctx.stroke(); }
    }

    // labels: inputs on the left, outputs on the right
    ctx.font = "12px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.fillStyle = "#4a5567"; ctx.textBaseline = "middle";
    // every neuron is labelled while there is room; else the first and the last
    const labelled = (n, k) => n <= 12 || k === 0 || k === n - 1;
    ctx.textAlign = "right";
    pos[0].forEach(([x, y], i) => { if (labelled(pos[0].length, i)) ctx.fillText(this.inputName(i), x - radii[0] - 6, y); });
    ctx.textAlign = "left";
    pos[L].forEach(([x, y], k) => {
      if (!labelled(pos[L].length, k)) return;
      const label = this.outputs && this.outputs.kind === "regression" ? "ŷ"
        : pos[L].length === 1 ? "p(1)" : this.className(k);
      ctx.fillText(label, x + radii[L] + 6, y);
    });
    if (anim) anim.drawLoss(ctx, g);

    if (hoverHit) tooltip.show(this, this.hover[2], this.hover[3], this.describe(hoverHit));
    else tooltip.hide(this);
  }

  /** An output neuron's class: the data's own label (a CSV's "yes"/"no") when it has one. */
  className(k) {
    const labels = this.outputs && this.outputs.labels;
    return Array.isArray(labels) && labels[k] !== undefined ? String(labels[k]) : `class ${k}`;
  }

  inputName(i) {
    const names = (this.net && this.net.inputs) || this.features;
    return featureLabel(names[i] ?? `x${i + 1}`);
  }

  hitTest(g, x, y) {
    const { pos, radii } = g;
    for (let l = 0; l < pos.length; l++) for (let k = 0; k < pos[l].length; k++) {
      const [nx, ny] = pos[l][k];
      const half = (g.sides && this.pictures && l > 0 && l < pos.length - 1 ? g.sides[l] / 2 : radii[l]) + 4;
      if ((nx - x) ** 2 + (ny - y) ** 2 <= half ** 2) return { kind: "neuron", l, k };
    }
    let best = null, bestD = 5;
    for (let l = 0; l < pos.length - 1; l++) {
      if (x < pos[l][0][0] || x > pos[l + 1][0][0]) continue;
      for (let j = 0; j < pos[l + 1].length; j++) for (let i = 0; i < pos[l].length; i++) {
        const [x1, y1] = pos[l][i], [x2, y2] = pos[l + 1][j];
        const dx = x2 - x1, dy = y2 - y1;
        const t = clamp(((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy), 0, 1);
        const d = Math.hypot(x - (x1 + t * dx), y - (y1 + t * dy));
        if (d < bestD) { bestD = d; best = { kind: "edge", l, i, j }; }
      }
    }
    return best;
  }

  layerName(l) {
    const L = this.net.sizes.length - 1;
    return l === 0 ? "input" : l === L ? "output" : `hidden ${l}`;
  }

  describe(hit) {
    const lines = [];
    if (hit.kind === "edge") {
      const w = this.W[hit.l] ? this.W[hit.l][hit.j][hit.i] : NaN;
      const gr = this.G[hit.l] ? this.G[hit.l][hit.j][hit.i] : null;
      const from = hit.l === 0 ? this.inputName(hit.i) : `${this.layerName(hit.l)} #${hit.i + 1}`;
      lines.push(`weight ${from} → ${this.layerName(hit.l + 1)} #${hit.j + 1}`);
      lines.push(`w = ${fmt(w, 4)}`);
      if (gr !== null && gr !== undefined) lines.push(`∂loss/∂w = ${fmt(gr, 3)}`);
      if (this.anim) { const extra = this.anim.describeEdge(hit.l, hit.j, hit.i); if (extra) lines.push(extra); }
    } else {
      const { l, k } = hit;
      if (l === 0) lines.push(`input ${this.inputName(k)}`);
      else {
        lines.push(`${this.layerName(l)}, neuron ${k + 1}`);
        const b = (this.net.biases || [])[l - 1];
        if (b) lines.push(`bias = ${fmt(b[k], 4)}`);
        const bg = (this.net.bias_grads || [])[l - 1];
        if (bg) lines.push(`∂loss/∂bias = ${fmt(bg[k], 3)}`);
      }
      if (this.blame[l] && this.gradView) lines.push(`gradient size = ${fmt(this.blame[l][k], 3)}`);
      if (this.anim) { const extra = this.anim.describeNeuron(l, k); if (extra) lines.push(extra); }
    }
    return lines.join("\n");
  }
}
