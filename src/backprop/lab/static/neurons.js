// Each hidden neuron's picture over the input plane (the frame's "neurons"): its output, or in
// gradient view d log p(predicted class) / d output. The server sends one byte a cell
// (base64), b standing for (b - 127) / 127 * scale[k]; 255 marks a value that is not finite.

import { NEG, POS, mix } from "./format.js";

const PAPER = [246, 247, 250];
const BAD = [198, 47, 47];

function bytes(b64) {
  const bin = atob(b64 || "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export class NeuronPictures {
  /** @param {object|null} frame the state frame's "neurons" */
  constructor(frame) {
    this.frame = frame || null;
    this.res = frame ? frame.res : 0;
    this.dims = frame ? frame.dims : 2;
    this.per = this.dims === 2 ? this.res * this.res : this.res;
    this.layers = (frame && Array.isArray(frame.layers) ? frame.layers : []).map((l) => ({
      values: bytes(l.values), scale: l.scale || [], grads: bytes(l.grads), gradScale: l.grad_scale || [],
    }));
    this.cache = new Map();
  }

  /** Whether hidden layer `l` (0-based) neuron `k` has a picture. */
  has(l, k) {
    const layer = this.layers[l];
    return !!layer && (k + 1) * this.per <= layer.values.length;
  }

  /** The neuron's scale: the largest |value| of its picture. */
  scale(l, k, grad) {
    const layer = this.layers[l];
    return layer ? (grad ? layer.gradScale[k] : layer.scale[k]) : null;
  }

  /** A small canvas, one pixel a cell (row 0 of the grid at the bottom); 1-D data: one row. */
  canvas(l, k, grad) {
    const key = `${l}:${k}:${grad ? "g" : "v"}`;
    if (this.cache.has(key)) return this.cache.get(key);
    const layer = this.layers[l];
    if (!this.has(l, k)) return null;
    const src = grad ? layer.grads : layer.values;
    const cols = this.res, rows = this.dims === 2 ? this.res : 1;
    const c = document.createElement("canvas");
    c.width = cols; c.height = rows;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    for (let i = 0; i < rows; i++) {
      const py = rows - 1 - i;
      for (let j = 0; j < cols; j++) {
        const b = src[k * this.per + i * cols + j];
        const t = (b - 127) / 127;
        const colour = b === 255 ? BAD : mix(PAPER, t >= 0 ? POS : NEG, 0.9 * Math.min(1, Math.abs(t)));
        const o = (py * cols + j) * 4;
        img.data[o] = colour[0]; img.data[o + 1] = colour[1]; img.data[o + 2] = colour[2]; img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    this.cache.set(key, c);
    return c;
  }
}

/** What a neuron's picture shows, in words: short (the caption under the large picture), or
 * with the definition (the network's legend). */
export function pictureWords(grad, task, long = false) {
  if (grad) {
    const of = task === "regression" ? "the prediction" : "log p(predicted class)";
    return long
      ? `∂ ${of} / ∂ the neuron's output at each point of the plane (the loss needs a target, which a point of the plane has not): blue where raising the neuron raises ${task === "regression" ? "the prediction" : "the network's confidence in the class it predicts there"}, orange where it lowers it`
      : `∂ ${of} / ∂ its output: blue, raising it raises ${task === "regression" ? "the prediction" : "the predicted class"}`;
  }
  return long ? "each hidden neuron's output (after its activation) over the input plane: blue positive, orange negative"
    : "its output: blue positive, orange negative";
}
