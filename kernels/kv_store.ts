/**
 * The shared KV store: ragged per-(layer, KV head) storage of post-RoPE keys, values and each
 * entry's original absolute position. Eviction is real compaction, so memory held shrinks and
 * attention cost falls with it.
 *
 * Layouts (row-major, f32):
 * - keys/values passed to `append`: [T, numKvHeads, headDim], or head-major
 *   [numKvHeads, T, headDim] (`layout` "head", one contiguous copy per segment)
 * - queries passed to `attend` and its output: [T, numHeads, headDim]
 * Query head j reads KV head floor(j / group), as HF's repeat_kv does.
 *
 * @module
 */

import type { KvStoragePool } from "./kv_pool.ts";

/** How the statistics reduce over the query heads of one GQA group. */
export type GqaReduction = "mean" | "max";

/** Attention statistics computed inside the attention pass, per KV head and stored entry. */
export interface StatsRequest {
  /** Σ over the call's queries of attention probabilities (H2O). */
  columnSum?: boolean;
  /** max over the call's queries of attention probabilities (KVzip). */
  columnMax?: boolean;
  /** Mean over the last w queries of the call (SnapKV); w is clamped to the call's length. */
  lastWindowMean?: number;
  /** The last query's probabilities (TOVA). */
  lastRow?: boolean;
  /** Reduction over the group's query heads; default "mean". */
  gqa?: GqaReduction;
}

/** The attention statistics, in the fixed order backends lay out their outputs. */
export const STAT_NAMES = ["columnSum", "columnMax", "lastWindowMean", "lastRow"] as const;
/** One of the attention statistics. */
export type StatName = typeof STAT_NAMES[number];

/**
 * The statistics an attention call asks for, in {@linkcode STAT_NAMES} order
 * (`lastWindowMean` counts when its window is above 0).
 *
 * @example
 * ```ts
 * requestedStats({ scale: 1, stats: { columnSum: true, lastWindowMean: 0 } }); // ["columnSum"]
 * ```
 */
export function requestedStats(options: AttendOptions): StatName[] {
  const req = options.stats;
  if (req === undefined) return [];
  return STAT_NAMES.filter((name) =>
    name === "lastWindowMean" ? (req.lastWindowMean ?? 0) > 0 : req[name] === true
  );
}

/** Statistics of one KV head, each aligned with that head's entries after the call's append. */
export interface HeadStats {
  columnSum?: Float32Array;
  columnMax?: Float32Array;
  lastWindowMean?: Float32Array;
  lastRow?: Float32Array;
}

/** Options of one attention call. */
export interface AttendOptions {
  /** Multiplier on q·k. */
  scale: number;
  /** tanh soft-capping of the logits; null or absent = none. */
  softcap?: number | null;
  /** Sliding window: a key is visible iff 0 ≤ qPos − kPos < window. Null = causal only. */
  window?: number | null;
  stats?: StatsRequest;
  /**
   * Layout of the queries and of the output: "token" [T, numHeads, headDim] (the default) or
   * "head" [numHeads, T, headDim], the one the CPU engine's graphs hand over and take back
   * without a transpose (the two coincide for one query).
   */
  layout?: QueryLayout;
}

/**
 * Token-major [T, heads, d] or head-major [heads, T, d]: the queries and output of
 * {@linkcode AttendOptions}, and the keys and values of {@linkcode KvStore.append}.
 */
export type QueryLayout = "token" | "head";

/**
 * [a, b, d] → [b, a, d] into a new array: switches queries or outputs between the token-major
 * and head-major layouts.
 *
 * @example
 * ```ts
 * const headMajor = swapLeadingAxes(q, { a: tokens, b: numHeads, d: headDim });
 * ```
 */
export function swapLeadingAxes(
  x: Float32Array,
  dims: { a: number; b: number; d: number },
): Float32Array {
  const { a, b, d } = dims;
  const out = new Float32Array(x.length);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      out.set(x.subarray((i * b + j) * d, (i * b + j + 1) * d), (j * a + i) * d);
    }
  }
  return out;
}

/** Output [T, numHeads, headDim] (or head-major, as asked) and statistics per KV head. */
export interface AttendResult {
  output: Float32Array;
  stats: HeadStats[] | null;
}

/** Geometry of a store. */
export interface KvStoreShape {
  numLayers: number;
  numKvHeads: number;
  /** Query heads per KV head. */
  group: number;
  headDim: number;
  /** Per layer: sliding-window size (entries older than the window are dropped), or null. */
  slidingWindows?: (number | null)[];
}

/** One (layer, KV head) segment. Arrays may be longer than `length` (capacity). */
export interface HeadSegment {
  keys: Float32Array;
  values: Float32Array;
  positions: Int32Array;
  length: number;
}

/** What `mark` captured; `restore` truncates back to it. */
export interface KvMark {
  readonly lengths: Int32Array;
  readonly nextPosition: number;
  readonly tokensSeen: number;
}

/**
 * Throws unless an append's keys and values hold `tokens` × numKvHeads × headDim floats each
 * (either layout); shared by the stores of every backend.
 */
export function checkAppendSizes(
  shape: KvStoreShape,
  o: { layer: number; keys: Float32Array; values: Float32Array; tokens: number },
): void {
  const floats = o.tokens * shape.numKvHeads * shape.headDim;
  if (o.keys.length !== floats || o.values.length !== floats) {
    throw new Error(
      `append(layer ${o.layer}): expected keys and values of ${o.tokens}×${shape.numKvHeads}×${shape.headDim} floats, got ${o.keys.length} and ${o.values.length}`,
    );
  }
}

/** Bytes of one entry: key + value in f32 plus its int32 position. */
export function entryBytes(headDim: number): number {
  return headDim * 4 * 2 + 4;
}

/** Entries [from, to) of one (layer, KV head) segment, by index; absent bounds = all. */
export interface EntryRange {
  layer: number;
  head: number;
  from?: number;
  to?: number;
}

/** Whose L2 norms {@linkcode KvStore.entryNorms} computes. */
export type NormOf = "keys" | "values";

/**
 * What every backend's store offers (CpuKvStore here, GpuKvStore in kernels/webgpu).
 *
 * Eviction methods read the store through three accessors only, so they run on every backend:
 * - `positions()`: host data everywhere (the GPU store mirrors them), free to read;
 * - `entryNorms()`: a reduction computed where the entries live (n floats per head come back);
 * - `readEntries()`: raw keys and values. On the GPU this is an explicit read-back (one
 *   submission and one wait for all the ranges asked): only methods that need raw keys use it
 *   (SnapKV's observation window, Expected Attention, KVzip's scratch stores).
 *
 * `segment()` on the CPU and the async `readSegment()` on the GPU remain for tests and
 * debugging.
 */
export interface KvStore {
  readonly shape: Readonly<Required<KvStoreShape>>;
  readonly nextPosition: number;
  readonly tokensSeen: number;
  /**
   * Append T entries to every KV head of `layer`: keys and values token-major
   * [T, numKvHeads, headDim] (the default) or head-major [numKvHeads, T, headDim].
   */
  append(
    layer: number,
    keys: Float32Array,
    values: Float32Array,
    positions: Int32Array,
    layout?: QueryLayout,
  ): void;
  /**
   * Make room for `tokens` more entries in every segment of the global layers (a prefill's
   * hint, so its chunks append without reallocating); sliding-window layers grow as usual.
   */
  reserve(tokens: number): void;
  attend(
    layer: number,
    q: Float32Array,
    positions: Int32Array,
    options: AttendOptions,
  ): Promise<AttendResult>;
  evict(layer: number, keep: readonly Int32Array[]): void;
  lengths(layer: number): Int32Array;
  /**
   * Original positions of one segment's entries, ascending. Read-only, and valid until the
   * store next changes (a view on the CPU, a copy of the host mirror on the GPU).
   */
  positions(layer: number, head: number): Int32Array;
  /**
   * Keys and values ([count, headDim] each) and positions of the entries each range asks for,
   * in request order. Read-only and valid until the store next changes: views on the CPU (no
   * copy), one read-back on the GPU.
   */
  readEntries(ranges: readonly EntryRange[]): Promise<HeadSegment[]>;
  /** ‖k‖₂ (or ‖v‖₂) of every entry of each KV head of `layer`, computed where entries live. */
  entryNorms(layer: number, of: NormOf): Promise<Float32Array[]>;
  mark(): KvMark;
  restore(mark: KvMark): void;
  /**
   * Sliding-window layers: drop the entries no later query can see, with the lazy rule of
   * appends (once 64 entries, or a quarter of the window, are dead). The model calls it after
   * each forward, so after a prefill a sliding layer holds its window, not the whole prompt.
   */
  trimWindows(): void;
  bytesHeld(): number;
  bytesUsed(): number;
  nominal(): number;
  clone(): KvStore;
  clear(): void;
  /**
   * Done with the store: drop every entry and hand its storage on for the next store to reuse
   * (the CPU store's {@linkcode KvStoragePool}; the GPU store frees it). The store is empty
   * afterwards, and views read from it must no longer be used.
   */
  release(): void;
}

/**
 * Runs attention for one layer over the store's segments. The store owns storage and
 * bookkeeping; an executor owns the arithmetic, so faster kernels can replace the reference.
 */
export interface AttentionExecutor {
  /**
   * Whether the executor takes `layout: "head"` itself; the store converts for those that
   * take token-major queries only.
   */
  readonly headMajor?: boolean;
  attend(
    segments: readonly HeadSegment[],
    query: { q: Float32Array; positions: Int32Array; group: number; headDim: number },
    options: AttendOptions,
  ): Promise<AttendResult>;
}

/**
 * The CPU KV store. Every segment grows by appends, shrinks by eviction (reallocated to fit,
 * so memory is returned) and is truncated by `restore`.
 *
 * @example
 * ```ts
 * const kv = new CpuKvStore({ numLayers: 2, numKvHeads: 2, group: 2, headDim: 8 });
 * kv.append(0, k, v, Int32Array.of(0, 1, 2));
 * const { output } = await kv.attend(0, q, Int32Array.of(0, 1, 2), { scale: 8 ** -0.5 });
 * kv.evict(0, [Int32Array.of(0, 2), Int32Array.of(1, 2)]);
 * ```
 */
export class CpuKvStore implements KvStore {
  readonly shape: Readonly<Required<KvStoreShape>>;
  #segments: HeadSegment[][];
  #executor: AttentionExecutor;
  #nextPosition = 0;
  #tokensSeen = 0;
  /**
   * Position of the last mark (−Infinity when none). Sliding layers never trim entries before
   * it, since `restore` must find them; entries appended after it are trimmed as usual.
   */
  #markPosition = -Infinity;
  readonly #pool: KvStoragePool | null;

  /**
   * `executor` runs attention (default: the reference loops); `pool`, when given, is where
   * growth takes storage from and `release` gives it back to (a model's stores share one).
   */
  constructor(
    shape: KvStoreShape,
    options: { executor?: AttentionExecutor; pool?: KvStoragePool } = {},
  ) {
    const slidingWindows = shape.slidingWindows ?? new Array(shape.numLayers).fill(null);
    if (slidingWindows.length !== shape.numLayers) {
      throw new Error(
        `slidingWindows has ${slidingWindows.length} entries for ${shape.numLayers} layers`,
      );
    }
    this.shape = { ...shape, slidingWindows };
    this.#segments = [];
    for (let l = 0; l < shape.numLayers; l++) {
      const layer: HeadSegment[] = [];
      for (let h = 0; h < shape.numKvHeads; h++) layer.push(emptySegment());
      this.#segments.push(layer);
    }
    this.#executor = options.executor ?? referenceAttention;
    this.#pool = options.pool ?? null;
  }

  /** Position the next appended token should take (one past the largest appended so far). */
  get nextPosition(): number {
    return this.#nextPosition;
  }

  /** Tokens appended since creation (each counted once, not per layer). */
  get tokensSeen(): number {
    return this.#tokensSeen;
  }

  /**
   * Append T entries to every KV head of `layer`, laid out as `layout` says (see
   * {@linkcode KvStore.append}). Positions must exceed every position the layer holds. The
   * store counts tokens on layer 0's appends.
   *
   * Head-major input is one copy per segment; token-major input is one per entry, which for
   * a 2048-token prefill of a Qwen3-0.6B shape is 917 504 copies of 512 bytes.
   */
  append(
    layer: number,
    keys: Float32Array,
    values: Float32Array,
    positions: Int32Array,
    layout: QueryLayout = "token",
  ): void {
    const { numKvHeads, headDim } = this.shape;
    const tokens = positions.length;
    checkAppendSizes(this.shape, { layer, keys, values, tokens });
    this.#trimWindow(layer, positions[0] ?? 0);
    const segments = this.#segments[layer];
    for (let h = 0; h < numKvHeads; h++) {
      const seg = segments[h];
      if (tokens > 0 && seg.length > 0 && positions[0] <= seg.positions[seg.length - 1]) {
        throw new Error(
          `append(layer ${layer}): position ${positions[0]} is not after the last stored position ${
            seg.positions[seg.length - 1]
          }`,
        );
      }
      reserve(seg, seg.length + tokens, headDim, this.#pool);
      if (layout === "head") {
        const block = tokens * headDim;
        seg.keys.set(keys.subarray(h * block, (h + 1) * block), seg.length * headDim);
        seg.values.set(values.subarray(h * block, (h + 1) * block), seg.length * headDim);
      } else {
        for (let t = 0; t < tokens; t++) {
          const src = (t * numKvHeads + h) * headDim;
          const dst = (seg.length + t) * headDim;
          seg.keys.set(keys.subarray(src, src + headDim), dst);
          seg.values.set(values.subarray(src, src + headDim), dst);
        }
      }
      seg.positions.set(positions, seg.length);
      seg.length += tokens;
    }
    if (layer === 0 && tokens > 0) {
      this.#tokensSeen += tokens;
      this.#nextPosition = Math.max(this.#nextPosition, positions[tokens - 1] + 1);
    }
  }

  /**
   * Make room for `tokens` more entries in every segment of the global layers, so that a
   * prefill of that many tokens appends without reallocating. Without it, every chunk of a
   * long prefill reallocates and copies what the segment holds (2048 tokens in chunks of 512
   * on a Qwen3-0.6B shape: 280 ms of appends, most of it those copies). The room follows the
   * usual growth rule, so an empty segment gets exactly the prompt and a short addition to a
   * full one grows it as an append would. Sliding-window layers hold at most their window and
   * grow as usual.
   */
  reserve(tokens: number): void {
    const { headDim, slidingWindows } = this.shape;
    for (let l = 0; l < this.#segments.length; l++) {
      if (slidingWindows[l] !== null) continue;
      for (const seg of this.#segments[l]) reserve(seg, seg.length + tokens, headDim, this.#pool);
    }
  }

  /**
   * Attention of T queries over the layer's stored entries (append the chunk's own keys
   * first), causal by original position, with optional statistics from the same pass.
   */
  attend(
    layer: number,
    q: Float32Array,
    positions: Int32Array,
    options: AttendOptions,
  ): Promise<AttendResult> {
    const { numKvHeads, group, headDim } = this.shape;
    if (q.length !== positions.length * numKvHeads * group * headDim) {
      throw new Error(
        `attend(layer ${layer}): expected ${positions.length}×${
          numKvHeads * group
        }×${headDim} query floats, got ${q.length}`,
      );
    }
    const window = options.window ?? this.shape.slidingWindows[layer];
    const segments = this.#segments[layer];
    const T = positions.length;
    if (options.layout !== "head" || T === 1 || this.#executor.headMajor === true) {
      return this.#executor.attend(segments, { q, positions, group, headDim }, {
        ...options,
        window,
      });
    }
    return attendTokenMajor(this.#executor, segments, { q, positions, group, headDim }, {
      ...options,
      window,
    });
  }

  /**
   * Keep only the listed entries of each KV head of `layer` (indices into the head's current
   * entries, strictly increasing). Storage is reallocated to the kept size, so memory is freed.
   */
  evict(layer: number, keep: readonly Int32Array[]): void {
    const { numKvHeads, headDim } = this.shape;
    if (keep.length !== numKvHeads) {
      throw new Error(
        `evict(layer ${layer}): expected ${numKvHeads} keep-sets, got ${keep.length}`,
      );
    }
    for (let h = 0; h < numKvHeads; h++) {
      const seg = this.#segments[layer][h];
      const idx = keep[h];
      for (let i = 0; i < idx.length; i++) {
        if (idx[i] < 0 || idx[i] >= seg.length || (i > 0 && idx[i] <= idx[i - 1])) {
          throw new Error(
            `evict(layer ${layer}, head ${h}): keep indices must be increasing and within [0, ${seg.length}); got ${
              idx[i]
            } at ${i}`,
          );
        }
      }
      this.#segments[layer][h] = gather(seg, idx, headDim);
    }
  }

  /** Entries held per KV head of `layer`. */
  lengths(layer: number): Int32Array {
    return Int32Array.from(this.#segments[layer], (s) => s.length);
  }

  /** A read-only view of one segment: keys, values and positions trimmed to its length. */
  segment(layer: number, head: number): HeadSegment {
    const s = this.#segments[layer][head];
    const d = this.shape.headDim;
    return {
      keys: s.keys.subarray(0, s.length * d),
      values: s.values.subarray(0, s.length * d),
      positions: s.positions.subarray(0, s.length),
      length: s.length,
    };
  }

  /** Positions of one segment (a view, valid until the store next changes). */
  positions(layer: number, head: number): Int32Array {
    const s = this.#segments[layer][head];
    return s.positions.subarray(0, s.length);
  }

  /** Entries of each range as views of the store (no copy); see {@linkcode KvStore.readEntries}. */
  readEntries(ranges: readonly EntryRange[]): Promise<HeadSegment[]> {
    const d = this.shape.headDim;
    let views: HeadSegment[];
    try {
      views = ranges.map((r) => {
        const s = this.#segments[r.layer][r.head];
        const [from, to] = checkRange(r, s.length);
        return {
          keys: s.keys.subarray(from * d, to * d),
          values: s.values.subarray(from * d, to * d),
          positions: s.positions.subarray(from, to),
          length: to - from,
        };
      });
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(views);
  }

  /** L2 norms per entry (f64 sums of the f32 squares, rounded once to f32). */
  entryNorms(layer: number, of: NormOf): Promise<Float32Array[]> {
    const d = this.shape.headDim;
    return Promise.resolve(this.#segments[layer].map((s) => {
      const data = of === "keys" ? s.keys : s.values;
      const out = new Float32Array(s.length);
      for (let i = 0; i < s.length; i++) {
        let sum = 0;
        for (let j = 0; j < d; j++) sum += data[i * d + j] ** 2;
        out[i] = Math.sqrt(sum);
      }
      return out;
    }));
  }

  /** Remember the current lengths so `restore` can drop everything appended afterwards. */
  mark(): KvMark {
    const { numLayers, numKvHeads } = this.shape;
    const lengths = new Int32Array(numLayers * numKvHeads);
    for (let l = 0; l < numLayers; l++) {
      for (let h = 0; h < numKvHeads; h++) {
        lengths[l * numKvHeads + h] = this.#segments[l][h].length;
      }
    }
    // Drop what the next query cannot see first, so the mark holds exactly the live window.
    for (let l = 0; l < numLayers; l++) this.#trimWindow(l, this.#nextPosition, true);
    this.#markPosition = this.#nextPosition;
    for (let l = 0; l < numLayers; l++) {
      for (let h = 0; h < numKvHeads; h++) {
        lengths[l * numKvHeads + h] = this.#segments[l][h].length;
      }
    }
    return { lengths, nextPosition: this.#nextPosition, tokensSeen: this.#tokensSeen };
  }

  /**
   * Truncate every segment back to its marked contents. Fails if entries that existed at the
   * mark were evicted since: they cannot be brought back.
   */
  restore(mark: KvMark): void {
    const { numLayers, numKvHeads } = this.shape;
    for (let l = 0; l < numLayers; l++) {
      for (let h = 0; h < numKvHeads; h++) {
        const seg = this.#segments[l][h];
        let keep = 0;
        while (keep < seg.length && seg.positions[keep] < mark.nextPosition) keep++;
        const marked = mark.lengths[l * numKvHeads + h];
        if (keep !== marked) {
          throw new Error(
            `restore: layer ${l} head ${h} held ${marked} entries at the mark but ${keep} of them remain; entries evicted after a mark cannot be restored`,
          );
        }
        seg.length = keep;
      }
    }
    this.#nextPosition = mark.nextPosition;
    this.#tokensSeen = mark.tokensSeen;
  }

  /** Bytes really allocated for keys, values and positions (capacity, not just length). */
  bytesHeld(): number {
    const perEntry = entryBytes(this.shape.headDim);
    let total = 0;
    for (const layer of this.#segments) {
      for (const s of layer) total += s.positions.length * perEntry;
    }
    return total;
  }

  /** Bytes the held entries occupy (length × entry size), without spare capacity. */
  bytesUsed(): number {
    let entries = 0;
    for (const layer of this.#segments) for (const s of layer) entries += s.length;
    return entries * entryBytes(this.shape.headDim);
  }

  /**
   * Nominal size: the bytes an uncompressed cache would hold for every token seen (sliding
   * layers counted at their window). The ratio bytesUsed()/nominal() is the physical kept
   * fraction.
   */
  nominal(): number {
    const { numKvHeads, headDim, slidingWindows } = this.shape;
    let entries = 0;
    for (const window of slidingWindows) {
      entries += numKvHeads *
        (window === null ? this.#tokensSeen : Math.min(window, this.#tokensSeen));
    }
    return entries * entryBytes(headDim);
  }

  /**
   * An independent copy holding the same entries (exactly sized), sharing the executor and the
   * pool: for pruning one scored cache at several ratios.
   */
  clone(): CpuKvStore {
    const copy = new CpuKvStore(this.shape, {
      executor: this.#executor,
      pool: this.#pool ?? undefined,
    });
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let h = 0; h < this.shape.numKvHeads; h++) {
        const seg = this.#segments[l][h];
        copy.#segments[l][h] = gather(
          seg,
          Int32Array.from({ length: seg.length }, (_, i) => i),
          this.shape.headDim,
        );
      }
    }
    copy.#nextPosition = this.#nextPosition;
    copy.#tokensSeen = this.#tokensSeen;
    copy.#markPosition = this.#markPosition;
    return copy;
  }

  /** Drop every entry and give the storage to the pool, or free it when there is none. */
  release(): void {
    this.#pool?.give(this.#segments.flat());
    this.clear();
  }

  /** Drop every entry and free all storage. */
  clear(): void {
    for (const layer of this.#segments) {
      for (let h = 0; h < layer.length; h++) layer[h] = emptySegment();
    }
    this.#nextPosition = 0;
    this.#tokensSeen = 0;
    this.#markPosition = -Infinity;
  }

  trimWindows(): void {
    for (let l = 0; l < this.shape.numLayers; l++) this.#trimWindow(l, this.#nextPosition);
  }

  /**
   * Sliding layers: drop entries no query from `nextQueryPosition` on can see, except those
   * before the last mark; unless `eager`, only once enough are dead to be worth moving. The
   * live entries move down in place, so a layer that decodes token by token keeps one buffer
   * instead of reallocating at every trim; storage is reallocated to fit only when it is over
   * twice what the live entries and their growth room need (after a long chunk went through
   * the window).
   */
  #trimWindow(layer: number, nextQueryPosition: number, eager = false): void {
    const window = this.shape.slidingWindows[layer];
    if (window === null) return;
    const { headDim } = this.shape;
    for (let h = 0; h < this.shape.numKvHeads; h++) {
      const seg = this.#segments[layer][h];
      // Positions ascend: [protected by the mark][dead][live].
      let from = 0;
      while (from < seg.length && seg.positions[from] < this.#markPosition) from++;
      let to = from;
      while (to < seg.length && nextQueryPosition - seg.positions[to] >= window) to++;
      const dead = to - from;
      if (dead === 0 || (!eager && dead < 64 && dead * 4 < window)) continue;
      const live = seg.length - dead;
      if (trimmedCapacity(seg.positions.length, live) === live) {
        const keep = new Int32Array(live);
        for (let i = 0; i < from; i++) keep[i] = i;
        for (let i = to; i < seg.length; i++) keep[from + i - to] = i;
        this.#segments[layer][h] = gather(seg, keep, headDim);
        continue;
      }
      seg.keys.copyWithin(from * headDim, to * headDim, seg.length * headDim);
      seg.values.copyWithin(from * headDim, to * headDim, seg.length * headDim);
      seg.positions.copyWithin(from, to, seg.length);
      seg.length = live;
    }
  }
}

/** A range's [from, to) within a segment of `length` entries, or an error naming it. */
export function checkRange(r: EntryRange, length: number): [number, number] {
  const from = r.from ?? 0;
  const to = r.to ?? length;
  if (
    !(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= length)
  ) {
    throw new Error(
      `readEntries(layer ${r.layer}, head ${r.head}): range [${from}, ${to}) is not within the segment's [0, ${length})`,
    );
  }
  return [from, to];
}

function emptySegment(): HeadSegment {
  return {
    keys: new Float32Array(0),
    values: new Float32Array(0),
    positions: new Int32Array(0),
    length: 0,
  };
}

/**
 * Entries a segment of `capacity` grows by at least when it must grow: modest, so held bytes
 * stay close to used, and at least 128 so short appends do not copy every time.
 */
export function growthHeadroom(capacity: number): number {
  return Math.max(128, Math.ceil(capacity / 8));
}

/**
 * The capacity a sliding layer's segment keeps after its window trim leaves `live` entries:
 * the same (no reallocation while decoding), unless that is over twice what they and their
 * growth room need (a long chunk went through the window), then exactly `live`.
 */
export function trimmedCapacity(capacity: number, live: number): number {
  return capacity > 2 * (live + growthHeadroom(live)) ? live : capacity;
}

/**
 * Grow capacity to at least `needed` entries, with {@linkcode growthHeadroom}; the new storage
 * comes from `pool` when it has some that fits.
 */
function reserve(
  seg: HeadSegment,
  needed: number,
  headDim: number,
  pool: KvStoragePool | null,
): void {
  const capacity = seg.positions.length;
  if (needed <= capacity) return;
  const next = Math.max(needed, capacity + growthHeadroom(capacity));
  const { keys, values, positions } = pool?.take(next, headDim) ?? {
    keys: new Float32Array(next * headDim),
    values: new Float32Array(next * headDim),
    positions: new Int32Array(next),
  };
  keys.set(seg.keys.subarray(0, seg.length * headDim));
  values.set(seg.values.subarray(0, seg.length * headDim));
  positions.set(seg.positions.subarray(0, seg.length));
  seg.keys = keys;
  seg.values = values;
  seg.positions = positions;
}

/** A new exactly-sized segment holding the listed entries of `seg`. */
function gather(seg: HeadSegment, keep: Int32Array, headDim: number): HeadSegment {
  const n = keep.length;
  const out: HeadSegment = {
    keys: new Float32Array(n * headDim),
    values: new Float32Array(n * headDim),
    positions: new Int32Array(n),
    length: n,
  };
  // Copy runs of consecutive indices with one `set` each.
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && keep[j] === keep[j - 1] + 1) j++;
    const from = keep[i] * headDim;
    const to = (keep[j - 1] + 1) * headDim;
    out.keys.set(seg.keys.subarray(from, to), i * headDim);
    out.values.set(seg.values.subarray(from, to), i * headDim);
    out.positions.set(seg.positions.subarray(keep[i], keep[j - 1] + 1), i);
    i = j;
  }
  return out;
}

/**
 * Head-major attention through an executor that takes token-major queries only: the queries
 * and the output are transposed around the call.
 */
async function attendTokenMajor(
  executor: AttentionExecutor,
  segments: readonly HeadSegment[],
  query: { q: Float32Array; positions: Int32Array; group: number; headDim: number },
  options: AttendOptions,
): Promise<AttendResult> {
  const dims = { a: segments.length * query.group, b: query.positions.length, d: query.headDim };
  const result = await executor.attend(
    segments,
    { ...query, q: swapLeadingAxes(query.q, dims) },
    { ...options, layout: "token" },
  );
  const output = swapLeadingAxes(result.output, { a: dims.b, b: dims.a, d: dims.d });
  return { output, stats: result.stats };
}

/**
 * The reference attention: plain loops, exact f32 inputs with f64 accumulation, one query row
 * of probabilities at a time (never queries × keys for the whole context).
 */
export const referenceAttention: AttentionExecutor = {
  attend(segments, query, options): Promise<AttendResult> {
    const { q, positions, group, headDim } = query;
    const tokens = positions.length;
    const numKvHeads = segments.length;
    const numHeads = numKvHeads * group;
    const output = new Float32Array(tokens * numHeads * headDim);
    const req = options.stats;
    const wantStats = requestedStats(options).length > 0;
    const stats: HeadStats[] | null = wantStats ? [] : null;
    const softcap = options.softcap ?? null;
    const window = options.window ?? null;
    const lastW = Math.min(req?.lastWindowMean ?? 0, tokens);
    const acc = new Float64Array(headDim);

    for (let h = 0; h < numKvHeads; h++) {
      const seg = segments[h];
      const n = seg.length;
      const probs = new Float64Array(n);
      // Per group member, then reduced over the group.
      const colSum = req?.columnSum ? new Float64Array(group * n) : null;
      const colMax = req?.columnMax ? new Float64Array(group * n) : null;
      const winMean = lastW > 0 ? new Float64Array(group * n) : null;
      const lastRow = req?.lastRow ? new Float64Array(group * n) : null;
      for (let g = 0; g < group; g++) {
        const head = h * group + g;
        for (let t = 0; t < tokens; t++) {
          const qPos = positions[t];
          const qOff = (t * numHeads + head) * headDim;
          let max = -Infinity;
          for (let j = 0; j < n; j++) {
            const kPos = seg.positions[j];
            if (kPos > qPos || (window !== null && qPos - kPos >= window)) {
              probs[j] = -Infinity;
              continue;
            }
            let dot = 0;
            const kOff = j * headDim;
            for (let i = 0; i < headDim; i++) dot += q[qOff + i] * seg.keys[kOff + i];
            let logit = dot * options.scale;
            if (softcap !== null) logit = Math.tanh(logit / softcap) * softcap;
            probs[j] = logit;
            if (logit > max) max = logit;
          }
          let sum = 0;
          for (let j = 0; j < n; j++) {
            const p = probs[j] === -Infinity ? 0 : Math.exp(probs[j] - max);
            probs[j] = p;
            sum += p;
          }
          acc.fill(0);
          for (let j = 0; j < n; j++) {
            if (probs[j] === 0) continue;
            const p = probs[j] / sum;
            probs[j] = p;
            const vOff = j * headDim;
            for (let i = 0; i < headDim; i++) acc[i] += p * seg.values[vOff + i];
          }
          if (sum > 0) {
            for (let i = 0; i < headDim; i++) output[qOff + i] = acc[i];
          }
          const row = g * n;
          if (colSum) { for (let j = 0; j < n; j++) colSum[row + j] += probs[j]; }
          if (colMax) {
            for (let j = 0; j < n; j++) colMax[row + j] = Math.max(colMax[row + j], probs[j]);
          }
          if (winMean && t >= tokens - lastW) {
            for (let j = 0; j < n; j++) winMean[row + j] += probs[j] / lastW;
          }
          if (lastRow && t === tokens - 1) {
            for (let j = 0; j < n; j++) lastRow[row + j] = probs[j];
          }
        }
      }
      if (stats) {
        const gqa = req?.gqa ?? "mean";
        const head: HeadStats = {};
        if (colSum) head.columnSum = reduceGroup(colSum, group, n, gqa);
        if (colMax) head.columnMax = reduceGroup(colMax, group, n, gqa);
        if (winMean) head.lastWindowMean = reduceGroup(winMean, group, n, gqa);
        if (lastRow) head.lastRow = reduceGroup(lastRow, group, n, gqa);
        stats.push(head);
      }
    }
    return Promise.resolve({ output, stats });
  },
};

/** Reduce [group, n] to [n] by mean or max over the group. */
export function reduceGroup(
  values: Float64Array | Float32Array,
  group: number,
  n: number,
  how: GqaReduction,
): Float32Array {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let r = how === "max" ? -Infinity : 0;
    for (let g = 0; g < group; g++) {
      const x = values[g * n + j];
      r = how === "max" ? Math.max(r, x) : r + x;
    }
    out[j] = how === "max" ? r : r / group;
  }
  return out;
}
