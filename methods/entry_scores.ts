/**
 * Per-entry state keyed by absolute position, for scorers whose scores outlive one forward:
 * scored once when their chunk is processed (SnapKV, Expected Attention, KVzip), or accumulated
 * over forwards (H2O). Keying by position keeps the state right across eviction and sliding
 * window trims without any bookkeeping; {@linkcode EntryScores.aligned} lines it up with the
 * store's current entries.
 *
 * @module
 */

import type { KvStore } from "../kernels/kv_store.ts";
import type { ScoreGrid } from "./types.ts";

/** How new values meet held ones at the same position. */
type Combine = "replace" | "add" | "max";

interface Column {
  positions: Int32Array;
  values: Float64Array;
  length: number;
}

/**
 * A (layer, KV head) grid of position → value tables, each sorted by position.
 *
 * @example
 * ```ts
 * const acc = new EntryScores(2, 1);
 * acc.add(0, 0, Int32Array.of(0, 1), Float32Array.of(0.5, 0.5));
 * acc.add(0, 0, Int32Array.of(0, 1, 2), Float32Array.of(0.2, 0.3, 0.5));
 * acc.get(0, 0, 1); // 0.8
 * ```
 */
export class EntryScores {
  readonly #columns: Column[][];

  constructor(numLayers: number, numKvHeads: number) {
    this.#columns = Array.from(
      { length: numLayers },
      () =>
        Array.from({ length: numKvHeads }, () => ({
          positions: new Int32Array(0),
          values: new Float64Array(0),
          length: 0,
        })),
    );
  }

  /** Set the values at `positions` (ascending), replacing what was there. */
  put(layer: number, head: number, positions: Int32Array, values: ArrayLike<number>): void {
    this.#merge(layer, head, positions, values, "replace");
  }

  /** Add `values` to what `positions` (ascending) hold; absent positions start at 0. */
  add(layer: number, head: number, positions: Int32Array, values: ArrayLike<number>): void {
    this.#merge(layer, head, positions, values, "add");
  }

  /**
   * Keep the larger of what `positions` (ascending) hold and `values`; absent positions take
   * `values` (KVzip's max over the chunks of one reconstruction pass).
   */
  max(layer: number, head: number, positions: Int32Array, values: ArrayLike<number>): void {
    this.#merge(layer, head, positions, values, "max");
  }

  /** The value at `position`, or undefined. */
  get(layer: number, head: number, position: number): number | undefined {
    const c = this.#columns[layer][head];
    const i = lowerBound(c.positions, c.length, position);
    return i < c.length && c.positions[i] === position ? c.values[i] : undefined;
  }

  /**
   * Values aligned with the store's current entries ([layer][head], NaN where nothing was
   * recorded). Positions the store no longer holds are dropped from the state.
   */
  aligned(cache: KvStore): ScoreGrid {
    const grid: ScoreGrid = [];
    for (let l = 0; l < this.#columns.length; l++) {
      const row: Float32Array[] = [];
      for (let h = 0; h < this.#columns[l].length; h++) {
        const pos = cache.positions(l, h);
        const c = this.#columns[l][h];
        const out = new Float32Array(pos.length).fill(NaN);
        const kept = new Int32Array(Math.min(c.length, pos.length));
        const keptValues = new Float64Array(kept.length);
        let j = 0;
        let k = 0;
        for (let i = 0; i < pos.length; i++) {
          while (j < c.length && c.positions[j] < pos[i]) j++;
          if (j < c.length && c.positions[j] === pos[i]) {
            out[i] = c.values[j];
            kept[k] = pos[i];
            keptValues[k++] = c.values[j];
          }
        }
        this.#columns[l][h] = { positions: kept, values: keptValues, length: k };
        row.push(out);
      }
      grid.push(row);
    }
    return grid;
  }

  #merge(
    layer: number,
    head: number,
    positions: Int32Array,
    values: ArrayLike<number>,
    combine: Combine,
  ): void {
    const c = this.#columns[layer][head];
    const n = positions.length;
    if (n === 0) return;
    // Common case: everything new lies after what is held.
    if (c.length === 0 || positions[0] > c.positions[c.length - 1]) {
      grow(c, c.length + n);
      c.positions.set(positions, c.length);
      for (let i = 0; i < n; i++) c.values[c.length + i] = values[i];
      c.length += n;
      return;
    }
    // Accumulating over a growing store (H2O's column sums): what is held is a prefix of the
    // new positions. Update in place and append the tail, without a merge copy.
    if (c.length <= n && startsWith(positions, c.positions, c.length)) {
      for (let i = 0; i < c.length; i++) {
        c.values[i] = combined(c.values[i], values[i], combine);
      }
      grow(c, n);
      c.positions.set(positions.subarray(c.length), c.length);
      for (let i = c.length; i < n; i++) c.values[i] = values[i];
      c.length = n;
      return;
    }
    const outPos = new Int32Array(c.length + n);
    const outVal = new Float64Array(c.length + n);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < c.length || j < n) {
      if (j >= n || (i < c.length && c.positions[i] < positions[j])) {
        outPos[k] = c.positions[i];
        outVal[k++] = c.values[i++];
      } else if (i >= c.length || positions[j] < c.positions[i]) {
        outPos[k] = positions[j];
        outVal[k++] = values[j++];
      } else {
        outPos[k] = positions[j];
        outVal[k++] = combined(c.values[i], values[j], combine);
        i++;
        j++;
      }
    }
    c.positions = outPos;
    c.values = outVal;
    c.length = k;
  }
}

function combined(held: number, value: number, combine: Combine): number {
  if (combine === "add") return held + value;
  return combine === "max" ? Math.max(held, value) : value;
}

/** Whether a[0..length) equals b[0..length). */
function startsWith(a: Int32Array, b: Int32Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function grow(c: Column, needed: number): void {
  if (needed <= c.positions.length) return;
  const cap = Math.max(needed, Math.ceil(c.positions.length * 1.5), 64);
  const p = new Int32Array(cap);
  const v = new Float64Array(cap);
  p.set(c.positions.subarray(0, c.length));
  v.set(c.values.subarray(0, c.length));
  c.positions = p;
  c.values = v;
}

function lowerBound(a: Int32Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `values` (at ascending `positions`) laid out over the ascending `target` positions; NaN where
 * a target position has no value.
 */
export function alignValues(
  target: Int32Array,
  positions: Int32Array,
  values: ArrayLike<number>,
): Float32Array {
  const out = new Float32Array(target.length).fill(NaN);
  let j = 0;
  for (let i = 0; i < target.length; i++) {
    while (j < positions.length && positions[j] < target[i]) j++;
    if (j < positions.length && positions[j] === target[i]) out[i] = values[j];
  }
  return out;
}

/**
 * A score grid built head by head from the store's current entries; `score` returns the
 * head's scores, or null for layers the selector never decides (empty array).
 */
export function gridFrom(
  cache: KvStore,
  score: (layer: number, head: number) => Float32Array | null,
): ScoreGrid {
  const grid: ScoreGrid = [];
  for (let l = 0; l < cache.shape.numLayers; l++) {
    const row: Float32Array[] = [];
    const lengths = cache.lengths(l);
    for (let h = 0; h < cache.shape.numKvHeads; h++) {
      row.push(
        cache.shape.slidingWindows[l] === null
          ? score(l, h) ?? new Float32Array(0)
          : new Float32Array(lengths[h]).fill(NaN),
      );
    }
    grid.push(row);
  }
  return grid;
}

/**
 * {@linkcode gridFrom} for scorers that read the store asynchronously (entry norms, raw
 * entries): `score(layer)` returns the decided layer's rows, one per KV head.
 *
 * @example
 * ```ts
 * const grid = await gridFromLayers(cache, async (l) => await cache.entryNorms(l, "keys"));
 * ```
 */
export async function gridFromLayers(
  cache: KvStore,
  score: (layer: number) => Promise<Float32Array[]>,
): Promise<ScoreGrid> {
  const grid: ScoreGrid = [];
  for (let l = 0; l < cache.shape.numLayers; l++) {
    if (cache.shape.slidingWindows[l] === null) {
      grid.push(await score(l));
    } else {
      grid.push(Array.from(cache.lengths(l), (n) => new Float32Array(n).fill(NaN)));
    }
  }
  return grid;
}
