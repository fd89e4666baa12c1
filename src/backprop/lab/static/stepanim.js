// "One step" mode: animates the two passes of a single training step on the network picture,
// from the server's step_detail message:
//   forward  - the first sample of the batch enters, each layer's activations light up in turn;
//   loss     - the output meets the target;
//   backward - the gradient travels back, each layer's edges coloured by dloss/dw;
//   update   - every weight moves by its update (w <- w - lr * gradient, or the optimiser's rule).
// After the animation the per-sample numbers stay available on hover until training resumes.

import { NEG, POS, clamp, fmt, heat, mix, num } from "./format.js";

const T_LAYER = 350;   // ms per layer, each way
const T_LOSS = 550;
const T_UPDATE = 700;

export class StepAnimation {
  /**
   * @param detail  the step_detail message
   * @param onPhase called with a sentence describing the current phase
   */
  constructor(detail, onPhase) {
    this.d = detail;
    this.onPhase = onPhase;
    this.L = (detail.forward || []).length;
    this.start = performance.now();
    this.tF = this.L * T_LAYER;
    this.tB = this.L * T_LAYER;
    this.total = this.tF + T_LOSS + this.tB + T_UPDATE;
    this.phase = "forward";
    this.layer = 0;
    this.frac = 0;
    this.t = 0;
    this.lastPhaseText = "";
    // neuron values: layer 0 is the sample's input features, layer l+1 the output of layer l
    const fwd = detail.forward || [];
    this.act = [((detail.sample || {}).input || []).map(num), ...fwd.map((f) => (f.post || []).map(num))];
    // dloss/dz of each layer's neurons (input layer: none)
    const bwd = detail.backward || [];
    this.gz = [null, ...bwd.map((b) => (b.grad_pre || []).map(num))];
    this.gw = bwd.map((b) => b.weight_grads || null);
    this.dw = (detail.update || []).map((u) => u.weights || null);
    this.db = (detail.update || []).map((u) => u.biases || null);
    const maxAbs = (arrs) => {
      let m = 0;
      for (const a of arrs) if (a) for (const v of a.flat ? a.flat(2) : a) { const x = Math.abs(num(v)); if (Number.isFinite(x) && x > m) m = x; }
      return m;
    };
    this.gzMax = maxAbs(this.gz);
    this.gwMax = maxAbs(this.gw);
    this.dwMax = maxAbs(this.dw);
    this.done = this.L === 0;
  }

  /** Advance the clock; returns false once the animation has finished. */
  tick(now = performance.now()) {
    const t = now - this.start;
    this.t = t;
    let text;
    if (this.L === 0) { this.phase = "done"; }
    else if (t < this.tF) {
      this.phase = "forward";
      this.layer = Math.floor(t / T_LAYER);
      this.frac = (t % T_LAYER) / T_LAYER;
      text = "Forward pass: the sample's activations flow layer by layer to the output";
    } else if (t < this.tF + T_LOSS) {
      this.phase = "loss";
      text = `Loss of this batch: ${fmt(this.d.loss, 4)}${this.targetText()}`;
    } else if (t < this.tF + T_LOSS + this.tB) {
      this.phase = "backward";
      const s = t - this.tF - T_LOSS;
      this.layer = this.L - 1 - Math.floor(s / T_LAYER);
      this.frac = (s % T_LAYER) / T_LAYER;
      text = "Backward pass: the gradient of the loss flows back, edge by edge";
    } else if (t < this.total) {
      this.phase = "update";
      text = `Update: every weight steps against its gradient (lr ${fmt(this.d.lr, 3)}${this.d.clipped ? ", gradient clipped" : ""})`;
    } else {
      this.phase = "done";
      text = `Step ${this.d.step} done: batch loss ${fmt(this.d.loss, 4)}, gradient norm ${fmt(this.d.grad_norm, 3)}. Hover for this step's numbers.`;
    }
    if (text && text !== this.lastPhaseText) { this.lastPhaseText = text; this.onPhase(text, this.phase); }
    return this.phase !== "done";
  }

  targetText() {
    const s = this.d.sample;
    if (!s || s.target === null || s.target === undefined) return "";
    return ` (the traced sample's target: ${typeof s.target === "number" && Number.isInteger(s.target) ? `class ${s.target}` : fmt(s.target, 3)})`;
  }

  // ---- hooks the network view calls ------------------------------------------------------
  /** Whether layer l's edges (from neurons of layer l to l+1) are lit now. */
  edgeActive(l) {
    return this.phase !== "forward" || l <= this.layer;
  }

  /** Whether layer l's edges show gradients (backward reached them) instead of weights. */
  showGrad(l) {
    return this.phase === "backward" && l >= this.layer;
  }

  neuronFill(l, k, fill) {
    if (this.phase === "forward" || this.phase === "loss") {
      const reached = this.phase === "loss" || l <= this.layer || (l === this.layer + 1 && this.frac > 0.9);
      if (!reached) return mix(fill, [255, 255, 255], 0.6);
      const a = (this.act[l] || [])[k];
      if (a === undefined || !Number.isFinite(a)) return fill;
      return mix([255, 255, 255], a >= 0 ? POS : NEG, 0.15 + 0.75 * Math.tanh(Math.abs(a)));
    }
    if (this.phase === "backward") {
      const g = (this.gz[l] || [])[k];
      const reached = l >= this.layer + 1;
      if (!reached || g === undefined) return l === 0 ? fill : mix(fill, [255, 255, 255], 0.4);
      const t = this.gzMax > 0 ? clamp(1 + Math.log10(Math.max(Math.abs(g), 1e-30) / this.gzMax) / 3, 0, 1) : 0;
      return heat(t);
    }
    if (this.phase === "update" && l > 0) {
      const d = (this.db[l - 1] || [])[k];
      if (d === undefined) return fill;
      return mix(fill, [255, 255, 255], 0.3 * (1 - Math.min(1, this.updatePulse())));
    }
    return fill;
  }

  updatePulse() {
    const s = (this.t - this.tF - T_LOSS - this.tB) / T_UPDATE;
    return Math.sin(clamp(s, 0, 1) * Math.PI);
  }

  /** Edge colour override during the update flash: [colour, width, alpha] or null. */
  updateEdge(l, j, i) {
    if (this.phase !== "update" || !this.dw[l]) return null;
    const d = num(this.dw[l][j][i]);
    if (!Number.isFinite(d)) return null;
    const t = this.dwMax > 0 ? clamp(1 + Math.log10(Math.max(Math.abs(d), 1e-30) / this.dwMax) / 3, 0, 1) : 0;
    const p = this.updatePulse();
    return [mix([200, 205, 214], [20, 150, 110], t), 0.4 + 3.2 * t * p + 0.3, 0.25 + 0.7 * t];
  }

  drawPulse(ctx, g) {
    const { pos } = g;
    let l, f, backward = false;
    if (this.phase === "forward") { l = this.layer; f = this.frac; }
    else if (this.phase === "backward") { l = this.layer; f = 1 - this.frac; backward = true; }
    else return;
    if (!Number.isInteger(l) || l < 0 || l >= pos.length - 1) return;
    const from = pos[l], to = pos[l + 1];
    const many = from.length * to.length > 200;
    ctx.fillStyle = backward ? "rgba(200,40,60,0.85)" : "rgba(22,32,46,0.8)";
    for (let j = 0; j < to.length; j += many ? 2 : 1) {
      for (let i = 0; i < from.length; i += many ? 2 : 1) {
        const x = from[i][0] + (to[j][0] - from[i][0]) * f, y = from[i][1] + (to[j][1] - from[i][1]) * f;
        ctx.beginPath(); ctx.arc(x, y, 2.2, 0, 7); ctx.fill();
      }
    }
  }

  drawNumber(ctx, l, k, x, y, r) {
    if (r < 8 || (this.phase !== "forward" && this.phase !== "loss" && this.phase !== "backward")) return;
    let v;
    if (this.phase === "backward") {
      if (l < this.layer + 1) return;
      v = (this.gz[l] || [])[k];
    } else {
      if (this.phase === "forward" && l > this.layer) return;
      v = (this.act[l] || [])[k];
    }
    if (v === undefined) return;
    ctx.font = "600 10px system-ui, sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    ctx.fillStyle = this.phase === "backward" ? "#9b1c31" : "#16202e";
    ctx.fillText(fmt(v, 2), x, y - r - 2);
  }

  drawLoss(ctx, g) {
    if (this.phase !== "loss") return;
    const { pos, radii } = g;
    const out = pos[pos.length - 1];
    const radius = radii[radii.length - 1];
    const x = out[0][0] + radius + 8;
    const y = out[out.length - 1][1] + radius + 18;
    ctx.font = "700 12px system-ui, sans-serif";
    ctx.fillStyle = "#c62f2f"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
    ctx.fillText(`loss ${fmt(this.d.loss, 3)}`, Math.min(x - 40, g.w - 80), Math.min(y, g.h - 8));
  }

  describeEdge(l, j, i) {
    // the gradient itself is in the frame already; the step adds its update
    const dw = this.dw[l] && this.dw[l][j] ? this.dw[l][j][i] : undefined;
    return dw === undefined ? "" : `step ${this.d.step} update Δw = ${fmt(dw, 3)}`;
  }

  describeNeuron(l, k) {
    const parts = [];
    const a = (this.act[l] || [])[k];
    if (a !== undefined) parts.push(`${l === 0 ? "value" : "activation"} (traced sample) = ${fmt(a, 4)}`);
    const g = (this.gz[l] || [])[k];
    if (g !== undefined) parts.push(`∂loss/∂z (traced sample) = ${fmt(g, 3)}`);
    const d = (this.db[l - 1] || [])[k];
    if (d !== undefined) parts.push(`bias update Δb = ${fmt(d, 3)}`);
    return parts.join("\n");
  }
}
