/**
 * Small numeric building blocks the method files share: RoPE un-rotation and averaging, 1-D
 * pooling, a rolling buffer of recent queries, position ranges inside a segment and a seeded
 * hash. Pure functions of typed arrays (the heavy, onnxruntime-backed ones are in
 * score_ort.ts).
 *
 * @module
 */

import { type RopeFrequencies, type RopeTables, ropeTables } from "../engine/rope.ts";

/**
 * Undo RoPE on post-RoPE vectors [T, heads, headDim] at `positions`, giving the pre-RoPE
 * vectors the model computed (after q/k norms). Exact up to f32 rounding: each (i, i + d/2)
 * pair was rotated by an angle and scaled by the attention scaling s (YaRN), so
 * a = a′·C/N + b′·S/N and b = b′·C/N − a′·S/N with C = s·cos, S = s·sin, N = C² + S².
 * Pass `tables` (ropeTables of the same positions) to reuse them across layers.
 */
export function unrotate(
  x: Float32Array,
  positions: Int32Array,
  o: { freqs: RopeFrequencies; heads: number; headDim: number; tables?: RopeTables },
): Float32Array {
  const { heads, headDim } = o;
  const half = headDim / 2;
  const tables = o.tables ?? ropeTables(o.freqs, positions);
  const out = new Float32Array(x.length);
  // C/N and S/N once per (token, frequency), for every head.
  const c = new Float64Array(half);
  const s = new Float64Array(half);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < half; i++) {
      const ct = tables.cos[t * half + i];
      const st = tables.sin[t * half + i];
      const norm = ct * ct + st * st;
      c[i] = ct / norm;
      s[i] = st / norm;
    }
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[base + i];
        const b = x[base + half + i];
        out[base + i] = a * c[i] + b * s[i];
        out[base + half + i] = b * c[i] - a * s[i];
      }
    }
  }
  return out;
}

/**
 * The RoPE rotation averaged over `count` positions from `start` (Expected Attention): per
 * frequency, the mean of s·cos and of s·sin. Applied to pairs (i, i + d/2) as RoPE applies its
 * rotation.
 */
export function averageRotation(
  freqs: RopeFrequencies,
  start: number,
  count: number,
): { cos: Float64Array; sin: Float64Array } {
  const half = freqs.invFreq.length;
  const positions = Int32Array.from({ length: count }, (_, i) => start + i);
  const tables = ropeTables(freqs, positions);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < half; i++) {
      cos[i] += tables.cos[t * half + i] / count;
      sin[i] += tables.sin[t * half + i] / count;
    }
  }
  return { cos, sin };
}

/**
 * 1-D pooling with stride 1 and padding ⌊kernel/2⌋, as torch's `max_pool1d` (padding never
 * wins) and `avg_pool1d` (count_include_pad: padded zeros count in the mean) compute it.
 */
export function pool1d(
  values: ArrayLike<number>,
  kernel: number,
  kind: "max" | "avg",
): Float32Array {
  const n = values.length;
  const pad = Math.floor(kernel / 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const from = Math.max(0, i - pad);
    const to = Math.min(n - 1, i - pad + kernel - 1);
    if (kind === "max") {
      let m = -Infinity;
      for (let j = from; j <= to; j++) if (values[j] > m) m = values[j];
      out[i] = m;
    } else {
      let s = 0;
      for (let j = from; j <= to; j++) s += values[j];
      out[i] = s / kernel;
    }
  }
  return out;
}

/** Indices [lo, hi) of the entries at ascending `positions` that lie in [start, end). */
export function positionRange(positions: Int32Array, start: number, end: number): [number, number] {
  const pos = positions;
  const lb = (x: number): number => {
    let lo = 0;
    let hi = pos.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pos[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const lo = lb(start);
  return [lo, Math.max(lo, lb(end))];
}

/** The last `capacity` query rows seen for one layer, across forwards. */
export class QueryWindow {
  readonly capacity: number;
  readonly #rowFloats: number;
  #queries: Float32Array;
  #positions: Int32Array;
  #length = 0;

  constructor(capacity: number, rowFloats: number) {
    this.capacity = capacity;
    this.#rowFloats = rowFloats;
    this.#queries = new Float32Array(capacity * rowFloats);
    this.#positions = new Int32Array(capacity);
  }

  /** Append a forward's queries [T, heads, headDim], keeping the last `capacity` rows. */
  push(queries: Float32Array, positions: Int32Array): void {
    const T = positions.length;
    const R = this.#rowFloats;
    const take = Math.min(T, this.capacity);
    const keepOld = Math.min(this.#length, this.capacity - take);
    if (keepOld > 0 && keepOld < this.#length) {
      this.#queries.copyWithin(0, (this.#length - keepOld) * R, this.#length * R);
      this.#positions.copyWithin(0, this.#length - keepOld, this.#length);
    }
    this.#queries.set(queries.subarray((T - take) * R, T * R), keepOld * R);
    this.#positions.set(positions.subarray(T - take), keepOld);
    this.#length = keepOld + take;
  }

  /** The rows held, oldest first: queries [w, heads, headDim] and their positions. */
  rows(): { queries: Float32Array; positions: Int32Array } {
    return {
      queries: this.#queries.slice(0, this.#length * this.#rowFloats),
      positions: this.#positions.slice(0, this.#length),
    };
  }

  get length(): number {
    return this.#length;
  }
}

/** A uniform value in [0, 1) from integers, deterministic (splitmix-style mixing). */
export function hashUniform(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return (h >>> 0) / 4294967296;
}
