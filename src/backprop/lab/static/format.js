// Number formatting and colour helpers shared by the views.

/** A value the server sent that may be a JSON-safe stand-in for a non-finite float. */
export function num(v) {
  if (typeof v === "number") return v;
  if (v === "nan" || v === "NaN") return NaN;
  if (v === "inf" || v === "Infinity") return Infinity;
  if (v === "-inf" || v === "-Infinity") return -Infinity;
  if (v === null || v === undefined) return NaN;
  const x = Number(v);
  return Number.isNaN(x) ? NaN : x;
}

/** Short human form: 0.0312, 1.25, 3e-4, 1.2e+5; NaN and infinities spelled out. */
export function fmt(v, digits = 3) {
  const x = num(v);
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = x.toExponential(Math.max(0, digits - 2)).split("e");
    return `${trimZeros(m)}e${e.replace("+", "")}`;
  }
  if (Number.isInteger(x) && a < 1e5) return String(x);
  return trimZeros(x.toPrecision(digits));
}

function trimZeros(s) {
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** A loss for the big read-outs: four significant digits. */
export function fmtLoss(v) {
  const x = num(v);
  if (!Number.isFinite(x)) return fmt(x);
  return x >= 1e4 || (x !== 0 && x < 1e-3) ? fmt(x, 3) : x.toPrecision(4);
}

export function fmtInt(n) {
  return Math.round(n).toLocaleString("en-US");
}

export function clamp(x, lo, hi) {
  return Math.min(hi, Math.max(lo, x));
}

// Class colours: distinct, readable on white, colour-blind-friendly first pairs.
export const CLASS_COLOURS = [
  [37, 99, 235], [232, 119, 46], [34, 154, 110], [196, 58, 128], [124, 92, 210],
  [181, 150, 24], [56, 160, 205], [207, 63, 63], [96, 125, 50], [120, 90, 60],
];

export const POS = [37, 99, 235];   // positive weight (blue)
export const NEG = [232, 119, 46];  // negative weight (orange)

export function rgb(c, a = 1) {
  return a >= 1 ? `rgb(${c[0]},${c[1]},${c[2]})` : `rgba(${c[0]},${c[1]},${c[2]},${a})`;
}

export function mix(a, b, t) {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

// A sequential scale for "how big" (gradient magnitude, final loss): pale -> amber -> crimson.
const HEAT = [[236, 239, 244], [250, 204, 110], [236, 112, 52], [190, 30, 60], [110, 16, 60]];

/** Colour for t in [0, 1] on the heat scale. */
export function heat(t) {
  const x = clamp(Number.isFinite(t) ? t : 1, 0, 1) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(x));
  return mix(HEAT[i], HEAT[i + 1], x - i);
}

// A scale for "how good" (low loss is green-teal, high loss is pale yellow).
const GOOD = [[22, 110, 100], [64, 160, 120], [160, 205, 120], [240, 230, 160], [250, 246, 225]];

export function goodness(t) {
  const x = clamp(Number.isFinite(t) ? t : 1, 0, 1) * (GOOD.length - 1);
  const i = Math.min(GOOD.length - 2, Math.floor(x));
  return mix(GOOD[i], GOOD[i + 1], x - i);
}

/** A canvas sized to its CSS box at the device pixel ratio; returns [ctx, width, height] in CSS px. */
export function fitCanvas(canvas) {
  const rect = canvas.getBoundingClientRect();
  const w = Math.max(1, Math.round(rect.width));
  const h = Math.max(1, Math.round(rect.height));
  const dpr = Math.min(window.devicePixelRatio || 1, 3);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return [ctx, w, h];
}

/** Pretty names for input features (x1^2 -> x₁²). */
export function featureLabel(name) {
  return String(name)
    .replace(/x1/g, "x₁").replace(/x2/g, "x₂")
    .replace(/\^2/g, "²").replace(/\*/g, "·");
}

/** "leaky_relu" -> "Leaky ReLU" and friends, for select options. */
const NAMES = {
  relu: "ReLU", leaky_relu: "Leaky ReLU", tanh: "tanh", sigmoid: "sigmoid", gelu: "GELU", elu: "ELU",
  softplus: "softplus", silu: "SiLU", linear: "linear",
  sgd: "SGD", momentum: "SGD + momentum", rmsprop: "RMSprop", adam: "Adam", adamw: "AdamW", adagrad: "Adagrad",
  constant: "constant", warmup_cosine: "warmup + cosine", cosine: "cosine", step: "step",
  default: "default", xavier: "Xavier", he: "He (Kaiming)", too_small: "too small", too_large: "too large",
  spiral: "spiral", moons: "moons", circles: "circles", xor: "XOR", blobs: "blobs", sine: "sine (regression)",
  plane: "plane (regression)", bumps: "bumps (regression)", digits: "digits (8×8 images)", csv: "my CSV",
};

export function choiceLabel(value) {
  if (value === null || value === undefined) return "—";
  return NAMES[value] ?? featureLabel(String(value).replace(/_/g, " "));
}
