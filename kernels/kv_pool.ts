/**
 * Storage that released CPU stores hand back, kept for the next store's growth. A sweep runs
 * one store per sample, and KVzip one scratch store per forward of a pass; without the pool each
 * new store writes into freshly mapped memory, and the first touch of every page is a fault:
 * a 2048-token prefill of a Qwen3-0.6B shape appends 470 MB, and its appends took 0.14–0.93 s
 * of its 7 s here (faults, and collecting the previous store), against 20 ms into memory
 * already touched.
 *
 * The pool holds at most one store's worth: its limit is the largest release it has taken, and
 * older storage leaves first. That much memory stays with the process between stores; release
 * only stores whose storage the next ones are likely to reuse (a sample's prefilled cache, not a
 * pruned copy). A store takes storage only where it would allocate anyway, so what a store
 * holds, and what `bytesHeld()` says, does not depend on the pool.
 *
 * @module
 */

import { growthHeadroom } from "./kv_store.ts";

/** One segment's storage: keys and values [capacity, headDim] and positions [capacity]. */
export interface SegmentStorage {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
}

/**
 * Storage released by CPU stores for the next ones to reuse (see the module notes).
 *
 * @example
 * ```ts
 * const pool = new KvStoragePool();
 * const first = new CpuKvStore(shape, { pool });
 * await model.prefill(ids, first);
 * first.release(); // its segments' storage goes to the pool
 * const second = new CpuKvStore(shape, { pool }); // its prefill reuses it
 * ```
 */
export class KvStoragePool {
  /** Whole buffers, most recently given first. */
  #free: SegmentStorage[] = [];
  #bytes = 0;
  #limitBytes = 0;

  /** Bytes the pool holds now. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Storage for `capacity` entries of `headDim` floats, as views of exactly that size on a
   * pooled buffer of at most {@linkcode growthHeadroom} more entries (the best fit, the extra
   * invisible to the store; similar prompt lengths reuse each other's), or null when none fits.
   */
  take(capacity: number, headDim: number): SegmentStorage | null {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const held = this.#free[i].positions.length;
      if (held < capacity || held > capacity + growthHeadroom(capacity)) continue;
      if (this.#free[i].keys.length !== held * headDim) continue;
      if (best < 0 || held < this.#free[best].positions.length) best = i;
    }
    if (best < 0) return null;
    const [found] = this.#free.splice(best, 1);
    this.#bytes -= storageBytes(found);
    return {
      keys: new Float32Array(found.keys.buffer, 0, capacity * headDim),
      values: new Float32Array(found.values.buffer, 0, capacity * headDim),
      positions: new Int32Array(found.positions.buffer, 0, capacity),
    };
  }

  /**
   * Keep one released store's storage (empty segments are skipped). The limit rises to this
   * release's bytes if it is the largest yet; the oldest storage beyond it is dropped.
   */
  give(storage: readonly SegmentStorage[]): void {
    const whole = storage.filter((s) => s.positions.length > 0).map((s) => ({
      keys: new Float32Array(s.keys.buffer),
      values: new Float32Array(s.values.buffer),
      positions: new Int32Array(s.positions.buffer),
    }));
    const bytes = whole.reduce((sum, s) => sum + storageBytes(s), 0);
    this.#limitBytes = Math.max(this.#limitBytes, bytes);
    this.#free.unshift(...whole);
    this.#bytes += bytes;
    while (this.#bytes > this.#limitBytes) this.#bytes -= storageBytes(this.#free.pop()!);
  }

  /** Drop everything pooled (the memory returns once nothing else references it). */
  drain(): void {
    this.#free = [];
    this.#bytes = 0;
  }
}

function storageBytes(s: SegmentStorage): number {
  return s.keys.byteLength + s.values.byteLength + s.positions.byteLength;
}
