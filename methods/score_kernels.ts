/**
 * Small numeric building blocks the method files share: RoPE un-rotation and averaging, 1-D
 * pooling, the observation-window attention of SnapKV-like methods, a rolling buffer of recent
 * queries, position ranges inside a segment and a seeded hash. Pure functions of typed arrays.
 *
 * @module
 */

import type { HeadSegment } from "../kernels/kv_store.ts";
import { type RopeFrequencies, ropeTables } from "../engine/rope.ts";

/**
 * Undo RoPE on post-RoPE vectors [T, heads, headDim] at `positions`, giving the pre-RoPE
 * vectors the model computed (after q/k norms). Exact up to f32 rounding: each (i, i + d/2)
 * pair was rotated by an angle and scaled by the attention scaling s (YaRN), so
 * a = (a′·C + b′·S) / (C² + S²) and b = (b′·C − a′·S) / (C² + S²) with C = s·cos, S = s·sin.
 */
export function unrotate(
  x: Float32Array,
  positions: Int32Array,
  o: { freqs: RopeFrequencies; heads: number; headDim: number },
): Float32Array {
  const { heads, headDim } = o;
  const half = headDim / 2;
  const tables = ropeTables(o.freqs, positions);
  const out = new Float32Array(x.length);
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = tables.cos[t * half + i];
        const s = tables.sin[t * half + i];
        const norm = c * c + s * s;
        const a = x[base + i];
        const b = x[base + half + i];
        out[base + i] = (a * c + b * s) / norm;
        out[base + half + i] = (b * c - a * s) / norm;
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

/** Indices [lo, hi) of the entries of `seg` whose positions lie in [start, end). */
export function positionRange(seg: HeadSegment, start: number, end: number): [number, number] {
  const pos = seg.positions;
  const lb = (x: number): number => {
    let lo = 0;
    let hi = seg.length;
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

/** How the query heads of a GQA group combine in {@linkcode windowAttention}. */
export type WindowGqa = "max-logits" | "mean-probs";

/**
 * Mean attention of a window of queries over a subset of one KV head's entries:
 * for each query t, softmax (f64) over the listed keys it may see (key position ≤ query
 * position) of scale·q·k, then the mean over the window's queries. `max-logits` takes the max
 * over the group's query heads on the logits before the softmax (official SnapKV, spec §5);
 * `mean-probs` averages the group's probabilities (kvpress SnapKV, spec §10).
 */
export function windowAttention(
  window: { queries: Float32Array; positions: Int32Array },
  o: {
    seg: HeadSegment;
    keys: Int32Array;
    head: number;
    group: number;
    headDim: number;
    scale: number;
    gqa: WindowGqa;
  },
): Float64Array {
  const { seg, keys, head, group, headDim, scale } = o;
  const W = window.positions.length;
  const heads = window.queries.length / (W * headDim);
  const n = keys.length;
  const out = new Float64Array(n);
  const logits = new Float64Array(n);
  const rowsPerQuery = o.gqa === "max-logits" ? 1 : group;
  for (let t = 0; t < W; t++) {
    const qPos = window.positions[t];
    for (let r = 0; r < rowsPerQuery; r++) {
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const e = keys[j];
        if (seg.positions[e] > qPos) {
          logits[j] = -Infinity;
          continue;
        }
        let best = -Infinity;
        const gFrom = o.gqa === "max-logits" ? 0 : r;
        const gTo = o.gqa === "max-logits" ? group : r + 1;
        for (let g = gFrom; g < gTo; g++) {
          const qOff = (t * heads + head * group + g) * headDim;
          let dot = 0;
          for (let i = 0; i < headDim; i++) {
            dot += window.queries[qOff + i] * seg.keys[e * headDim + i];
          }
          if (dot > best) best = dot;
        }
        logits[j] = best * scale;
        if (logits[j] > max) max = logits[j];
      }
      if (max === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const p = logits[j] === -Infinity ? 0 : Math.exp(logits[j] - max);
        logits[j] = p;
        sum += p;
      }
      const w = 1 / (sum * W * rowsPerQuery);
      for (let j = 0; j < n; j++) out[j] += logits[j] * w;
    }
  }
  return out;
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
