/**
 * The shared KV store on the GPU: the same contract as {@linkcode CpuKvStore}, with every
 * key and value in device memory.
 *
 * Layout: each (layer, KV head) segment is one storage buffer of `capacity` entries of
 * 2d + 1 32-bit words — the post-RoPE key (f32 bits), the value (f32 bits) and the original
 * position (i32 bits). One buffer per segment keeps segments ragged and exactly sized after
 * eviction, lets an append be a single copy per head, and lets attention bind one segment at
 * a time (a segment may hold up to maxBinding / (8d + 4) entries: 262 144 for d = 128 on Mesa).
 *
 * The host mirrors lengths, capacities and positions (4 bytes per entry), so bookkeeping
 * (mark, restore, window trimming, validation) never waits on the device. The store itself
 * keeps keys and values on the device: appends from the forward pass copy device to device,
 * eviction gathers on the device from host keep-sets, and attention reads back only its output
 * and statistics. What a method asks for is read back on its behalf: `readEntries` ranges,
 * entry norms, and (in the model) its taps' tensors. {@linkcode GpuKvStore.readSegment} reads a
 * segment back for tests and debugging.
 *
 * @module
 */

import {
  type AttendOptions,
  type AttendResult,
  checkAppendSizes,
  checkRange,
  entryBytes,
  type EntryRange,
  growthHeadroom,
  type HeadSegment,
  type HeadStats,
  type KvMark,
  type KvStore,
  type KvStoreShape,
  type NormOf,
  type QueryLayout,
  requestedStats,
  swapLeadingAxes,
  trimmedCapacity,
} from "../kv_store.ts";
import { attendLayer, type DeviceStats } from "./attention.ts";
import { type GpuContext, grid1d, type KernelDef, type Readback, type Recorder } from "./device.ts";
import { entryWords, gatherRows, MAX_HEAD_DIM } from "./ops.ts";

/** out[at + i] = ‖row i of the key (offset 0) or value (offset d) part‖₂, f32 sums. */
const ENTRY_NORMS: KernelDef = {
  name: "kv_entry_norms",
  params: [["n", "u32"], ["d", "u32"], ["E", "u32"], ["offset", "u32"], ["at", "u32"]],
  bindings: [["src", "read", "f32"], ["out", "write", "f32"]],
  workgroupSize: "64",
  body: /* wgsl */ `
@compute
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + li;
  if (i >= p.n) {
    return;
  }
  let base = i * p.E + p.offset;
  var sum = 0.0;
  for (var j = 0u; j < p.d; j++) {
    let x = src[base + j];
    sum += x * x;
  }
  out[p.at + i] = sqrt(sum);
}`,
};

interface Segment {
  /** capacity × (2d + 1) words, or null when the capacity is 0. */
  buffer: GPUBuffer | null;
  capacity: number;
  length: number;
  /** Host mirror of the positions, capacity long. */
  positions: Int32Array;
}

function emptySegment(): Segment {
  return { buffer: null, capacity: 0, length: 0, positions: new Int32Array(0) };
}

/**
 * The KV store in WebGPU buffers.
 *
 * @example
 * ```ts
 * const gpu = await GpuContext.open();
 * const kv = new GpuKvStore(gpu, { numLayers: 2, numKvHeads: 2, group: 2, headDim: 8 });
 * kv.append(0, k, v, Int32Array.of(0, 1, 2));
 * const { output } = await kv.attend(0, q, Int32Array.of(0, 1, 2), { scale: 8 ** -0.5 });
 * kv.evict(0, [Int32Array.of(0, 2), Int32Array.of(1, 2)]);
 * ```
 */
export class GpuKvStore implements KvStore {
  readonly shape: Readonly<Required<KvStoreShape>>;
  readonly gpu: GpuContext;
  #segments: Segment[][];
  #nextPosition = 0;
  #tokensSeen = 0;
  /** As in CpuKvStore: sliding layers never trim entries before the last mark. */
  #markPosition = -Infinity;

  constructor(gpu: GpuContext, shape: KvStoreShape) {
    const slidingWindows = shape.slidingWindows ?? new Array(shape.numLayers).fill(null);
    if (slidingWindows.length !== shape.numLayers) {
      throw new Error(
        `slidingWindows has ${slidingWindows.length} entries for ${shape.numLayers} layers`,
      );
    }
    if (shape.headDim > MAX_HEAD_DIM) {
      throw new Error(`GpuKvStore: head dim ${shape.headDim} exceeds ${MAX_HEAD_DIM}`);
    }
    this.gpu = gpu;
    this.shape = { ...shape, slidingWindows };
    this.#segments = Array.from(
      { length: shape.numLayers },
      () => Array.from({ length: shape.numKvHeads }, emptySegment),
    );
  }

  get nextPosition(): number {
    return this.#nextPosition;
  }

  get tokensSeen(): number {
    return this.#tokensSeen;
  }

  /** Most entries one segment may hold (one binding). */
  get maxEntries(): number {
    return Math.floor(this.gpu.maxBinding / (entryWords(this.shape.headDim) * 4));
  }

  /**
   * Append T entries (host arrays, laid out as `layout` says; see {@linkcode KvStore.append})
   * to every KV head of `layer`. Positions must exceed every position the layer holds.
   */
  append(
    layer: number,
    keys: Float32Array,
    values: Float32Array,
    positions: Int32Array,
    layout: QueryLayout = "token",
  ): void {
    const { numKvHeads, headDim } = this.shape;
    const T = positions.length;
    checkAppendSizes(this.shape, { layer, keys, values, tokens: T });
    const E = entryWords(headDim);
    const rec = this.gpu.recorder();
    const starts = this.#prepareAppend(rec, layer, positions);
    rec.submit();
    const keyBits = new Uint32Array(keys.buffer, keys.byteOffset, keys.length);
    const valueBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let h = 0; h < numKvHeads && T > 0; h++) {
      const entries = new Uint32Array(T * E);
      for (let t = 0; t < T; t++) {
        const src = (layout === "head" ? h * T + t : t * numKvHeads + h) * headDim;
        entries.set(keyBits.subarray(src, src + headDim), t * E);
        entries.set(valueBits.subarray(src, src + headDim), t * E + headDim);
        entries[t * E + 2 * headDim] = positions[t] >>> 0;
      }
      this.gpu.write(this.#segments[layer][h].buffer!, starts[h] * E * 4, entries);
    }
    this.#finishAppend(layer, positions);
  }

  /**
   * Device path of {@linkcode append}: entries already laid out on the device as
   * [numKvHeads, T, 2d + 1] in `stage` (see kernels/webgpu/ops.ts qkNormRope) are copied
   * into each head's segment, recorded on `rec`.
   */
  appendStaged(rec: Recorder, layer: number, stage: GPUBuffer, positions: Int32Array): void {
    const T = positions.length;
    const entry = entryWords(this.shape.headDim) * 4;
    const starts = this.#prepareAppend(rec, layer, positions);
    if (T > 0) {
      starts.forEach((start, h) => {
        const seg = this.#segments[layer][h];
        rec.copy(stage, h * T * entry, seg.buffer!, start * entry, T * entry);
      });
    }
    this.#finishAppend(layer, positions);
  }

  /** Trim, check order and reserve room for T entries per head; returns each head's start. */
  #prepareAppend(rec: Recorder, layer: number, positions: Int32Array): number[] {
    const T = positions.length;
    this.#trimWindow(rec, layer, positions[0] ?? 0, false);
    const starts: number[] = [];
    for (let h = 0; h < this.shape.numKvHeads; h++) {
      const seg = this.#segments[layer][h];
      if (T > 0 && seg.length > 0 && positions[0] <= seg.positions[seg.length - 1]) {
        throw new Error(
          `append(layer ${layer}): position ${positions[0]} is not after the last stored position ${
            seg.positions[seg.length - 1]
          }`,
        );
      }
      this.#reserve(rec, layer, h, seg.length + T);
      starts.push(seg.length);
    }
    return starts;
  }

  #finishAppend(layer: number, positions: Int32Array): void {
    const T = positions.length;
    for (const seg of this.#segments[layer]) {
      seg.positions.set(positions, seg.length);
      seg.length += T;
    }
    if (layer === 0 && T > 0) {
      this.#tokensSeen += T;
      this.#nextPosition = Math.max(this.#nextPosition, positions[T - 1] + 1);
    }
  }

  /**
   * Attention of T host queries [T, numHeads, headDim] (or head-major, as `layout` asks) over
   * the layer's entries, with the optional statistics; one submission and one readback.
   */
  async attend(
    layer: number,
    q: Float32Array,
    positions: Int32Array,
    options: AttendOptions,
  ): Promise<AttendResult> {
    const { numKvHeads, group, headDim } = this.shape;
    const T = positions.length;
    if (q.length !== T * numKvHeads * group * headDim) {
      throw new Error(
        `attend(layer ${layer}): expected ${T}×${
          numKvHeads * group
        }×${headDim} query floats, got ${q.length}`,
      );
    }
    if (T === 0) return { output: new Float32Array(0), stats: null };
    // The kernels read token-major queries; head-major ones are transposed around the call.
    const heads = numKvHeads * group;
    const headMajor = options.layout === "head" && T > 1;
    if (headMajor) q = swapLeadingAxes(q, { a: heads, b: T, d: headDim });
    const gpu = this.gpu;
    const rec = gpu.recorder();
    const qBuffer = gpu.upload(q, "attend q");
    const posBuffer = gpu.upload(positions, "attend positions");
    const out = gpu.createBuffer(q.byteLength, "attend output");
    const stats = this.attendDevice(rec, layer, {
      q: qBuffer,
      positions: posBuffer,
      out,
      tokens: T,
    }, options);
    const outRead = rec.read(out, 0, q.byteLength);
    const statsRead = stats === null ? null : rec.read(stats.buffer, 0, stats.buffer.size);
    for (const b of [qBuffer, posBuffer, out, stats?.buffer ?? null]) rec.releaseAfter(b);
    await rec.finish();
    const output = new Float32Array(outRead.data());
    return {
      output: headMajor ? swapLeadingAxes(output, { a: T, b: heads, d: headDim }) : output,
      stats: stats === null ? null : splitStats(stats, statsRead!),
    };
  }

  /**
   * Device path of {@linkcode attend}: queries, positions and output are device buffers;
   * statistics stay on the device for the caller to read (and release).
   */
  attendDevice(
    rec: Recorder,
    layer: number,
    io: { q: GPUBuffer; positions: GPUBuffer; out: GPUBuffer; tokens: number },
    options: AttendOptions,
  ): DeviceStats | null {
    const window = options.window ?? this.shape.slidingWindows[layer];
    const stats = requestedStats(options);
    return attendLayer(
      rec,
      this.#segments[layer],
      io,
      { group: this.shape.group, headDim: this.shape.headDim },
      {
        scale: options.scale,
        softcap: options.softcap ?? null,
        window,
        stats,
        gqa: options.stats?.gqa ?? "mean",
        lastWindow: options.stats?.lastWindowMean ?? 0,
      },
    );
  }

  /**
   * Keep only the listed entries of each KV head of `layer` (indices into the head's current
   * entries, strictly increasing). Each segment is gathered on the device into a new,
   * exactly sized buffer, so device memory is freed.
   */
  evict(layer: number, keep: readonly Int32Array[]): void {
    const { numKvHeads } = this.shape;
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
    }
    const rec = this.gpu.recorder();
    for (let h = 0; h < numKvHeads; h++) this.#gather(rec, layer, h, keep[h]);
    rec.submit();
  }

  /** Entries held per KV head of `layer`. */
  lengths(layer: number): Int32Array {
    return Int32Array.from(this.#segments[layer], (s) => s.length);
  }

  /** Positions held by one segment (host mirror; no device access). */
  positions(layer: number, head: number): Int32Array {
    const s = this.#segments[layer][head];
    return s.positions.slice(0, s.length);
  }

  /**
   * Keys, values and positions of each range, read back from the device in one submission
   * and one wait. The explicit path by which raw keys and values leave the device, for the
   * methods that need them (see {@linkcode KvStore.readEntries}).
   */
  async readEntries(ranges: readonly EntryRange[]): Promise<HeadSegment[]> {
    const d = this.shape.headDim;
    const E = entryWords(d);
    const rec = this.gpu.recorder();
    const reads = ranges.map((r) => {
      const s = this.#segments[r.layer][r.head];
      const [from, to] = checkRange(r, s.length);
      const read = to > from ? rec.read(s.buffer!, from * E * 4, (to - from) * E * 4) : null;
      return { read, count: to - from, positions: s.positions.slice(from, to) };
    });
    if (reads.some((r) => r.read !== null)) await rec.finish();
    else rec.submit();
    return reads.map(({ read, count, positions }) => {
      const keys = new Float32Array(count * d);
      const values = new Float32Array(count * d);
      if (read !== null) {
        const words = new Float32Array(read.data(), 0, count * E);
        for (let j = 0; j < count; j++) {
          keys.set(words.subarray(j * E, j * E + d), j * d);
          values.set(words.subarray(j * E + d, j * E + 2 * d), j * d);
        }
      }
      return { keys, values, positions, length: count };
    });
  }

  /** ‖k‖₂ (or ‖v‖₂) per entry of each head of `layer`: one reduction kernel per head. */
  async entryNorms(layer: number, of: NormOf): Promise<Float32Array[]> {
    const d = this.shape.headDim;
    const E = entryWords(d);
    const segments = this.#segments[layer];
    const total = segments.reduce((a, s) => a + s.length, 0);
    if (total === 0) return segments.map(() => new Float32Array(0));
    const out = this.gpu.createBuffer(total * 4, "entry norms");
    const rec = this.gpu.recorder();
    const kernel = this.gpu.kernel(ENTRY_NORMS);
    let at = 0;
    for (const s of segments) {
      rec.dispatch(
        kernel,
        { n: s.length, d, E, offset: of === "keys" ? 0 : d, at },
        { src: s.buffer!, out },
        grid1d(Math.ceil(s.length / 64)),
      );
      at += s.length;
    }
    const read = rec.read(out, 0, total * 4);
    rec.releaseAfter(out);
    await rec.finish();
    const all = new Float32Array(read.data(), 0, total);
    at = 0;
    return segments.map((s) => {
      const norms = all.slice(at, at + s.length);
      at += s.length;
      return norms;
    });
  }

  /**
   * Read one segment back from the device: keys, values and positions trimmed to its
   * length. For tests and debugging; methods read entries through `readEntries`.
   */
  async readSegment(layer: number, head: number): Promise<HeadSegment> {
    const s = this.#segments[layer][head];
    const d = this.shape.headDim;
    const E = entryWords(d);
    const keys = new Float32Array(s.length * d);
    const values = new Float32Array(s.length * d);
    const positions = new Int32Array(s.length);
    if (s.length > 0) {
      const rec = this.gpu.recorder();
      const read = rec.read(s.buffer!, 0, s.length * E * 4);
      await rec.finish();
      const words = new Float32Array(read.data());
      const bits = new Int32Array(read.data());
      for (let j = 0; j < s.length; j++) {
        keys.set(words.subarray(j * E, j * E + d), j * d);
        values.set(words.subarray(j * E + d, j * E + 2 * d), j * d);
        positions[j] = bits[j * E + 2 * d];
      }
    }
    return { keys, values, positions, length: s.length };
  }

  /** Remember the current lengths so `restore` can drop everything appended afterwards. */
  mark(): KvMark {
    const { numLayers, numKvHeads } = this.shape;
    const rec = this.gpu.recorder();
    // Drop what the next query cannot see first, so the mark holds exactly the live window.
    for (let l = 0; l < numLayers; l++) this.#trimWindow(rec, l, this.#nextPosition, true);
    rec.submit();
    this.#markPosition = this.#nextPosition;
    const lengths = new Int32Array(numLayers * numKvHeads);
    for (let l = 0; l < numLayers; l++) {
      for (let h = 0; h < numKvHeads; h++) {
        lengths[l * numKvHeads + h] = this.#segments[l][h].length;
      }
    }
    return { lengths, nextPosition: this.#nextPosition, tokensSeen: this.#tokensSeen };
  }

  /**
   * Truncate every segment back to its marked contents (host bookkeeping only: entries past
   * the length are spare capacity). Fails if entries that existed at the mark were evicted.
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

  /** Device bytes of the segment buffers (capacity × entry size: exactly what is allocated). */
  bytesHeld(): number {
    const perEntry = entryBytes(this.shape.headDim);
    let total = 0;
    for (const layer of this.#segments) for (const s of layer) total += s.capacity * perEntry;
    return total;
  }

  /** Bytes the held entries occupy, without spare capacity. */
  bytesUsed(): number {
    let entries = 0;
    for (const layer of this.#segments) for (const s of layer) entries += s.length;
    return entries * entryBytes(this.shape.headDim);
  }

  /** As CpuKvStore.nominal: an uncompressed cache's bytes for every token seen. */
  nominal(): number {
    const { numKvHeads, headDim, slidingWindows } = this.shape;
    let entries = 0;
    for (const window of slidingWindows) {
      entries += numKvHeads *
        (window === null ? this.#tokensSeen : Math.min(window, this.#tokensSeen));
    }
    return entries * entryBytes(headDim);
  }

  /** An independent copy holding the same entries (exactly sized, copied on the device). */
  clone(): GpuKvStore {
    const copy = new GpuKvStore(this.gpu, this.shape);
    const rec = this.gpu.recorder();
    const E = entryWords(this.shape.headDim);
    for (let l = 0; l < this.shape.numLayers; l++) {
      for (let h = 0; h < this.shape.numKvHeads; h++) {
        const seg = this.#segments[l][h];
        const target = copy.#segments[l][h];
        target.length = seg.length;
        target.capacity = seg.length;
        target.positions = seg.positions.slice(0, seg.length);
        if (seg.length > 0) {
          target.buffer = this.gpu.createBuffer(seg.length * E * 4, `kv ${l}.${h}`);
          rec.copy(seg.buffer!, 0, target.buffer, 0, seg.length * E * 4);
        }
      }
    }
    rec.submit();
    copy.#nextPosition = this.#nextPosition;
    copy.#tokensSeen = this.#tokensSeen;
    copy.#markPosition = this.#markPosition;
    return copy;
  }

  /** Done with the store: its device buffers are freed (device memory is not pooled here). */
  release(): void {
    this.clear();
  }

  /** Drop every entry and free all device storage. */
  clear(): void {
    for (const layer of this.#segments) {
      for (let h = 0; h < layer.length; h++) {
        this.gpu.release(layer[h].buffer);
        layer[h] = emptySegment();
      }
    }
    this.#nextPosition = 0;
    this.#tokensSeen = 0;
    this.#markPosition = -Infinity;
  }

  /**
   * Make room for `tokens` more entries in every segment of the global layers, as
   * {@linkcode CpuKvStore.reserve} does (capped at what one storage binding holds).
   */
  reserve(tokens: number): void {
    const rec = this.gpu.recorder();
    for (let l = 0; l < this.#segments.length; l++) {
      if (this.shape.slidingWindows[l] !== null) continue;
      this.#segments[l].forEach((seg, h) => {
        this.#reserve(rec, l, h, Math.min(this.maxEntries, seg.length + tokens));
      });
    }
    rec.submit();
  }

  /** Grow head h's capacity to at least `needed` entries, as CpuKvStore does (copy on device). */
  #reserve(rec: Recorder, layer: number, h: number, needed: number): void {
    const seg = this.#segments[layer][h];
    if (needed <= seg.capacity) return;
    const max = this.maxEntries;
    if (needed > max) {
      throw new Error(
        `GpuKvStore: layer ${layer} head ${h} would hold ${needed} entries, above the ${max} that fit one storage binding of ${this.gpu.maxBinding} bytes`,
      );
    }
    const capacity = Math.min(
      max,
      Math.max(needed, seg.capacity + growthHeadroom(seg.capacity)),
    );
    const bytes = capacity * entryWords(this.shape.headDim) * 4;
    const buffer = this.gpu.createBuffer(bytes, `kv ${layer}.${h}`);
    if (seg.length > 0) {
      rec.copy(seg.buffer!, 0, buffer, 0, seg.length * entryWords(this.shape.headDim) * 4);
    }
    rec.releaseAfter(seg.buffer);
    const positions = new Int32Array(capacity);
    positions.set(seg.positions.subarray(0, seg.length));
    seg.buffer = buffer;
    seg.capacity = capacity;
    seg.positions = positions;
  }

  /**
   * Replace head h's segment by one of `capacity` entries (exactly sized unless given) holding
   * the entries `keep`.
   */
  #gather(rec: Recorder, layer: number, h: number, keep: Int32Array, capacity = keep.length): void {
    const seg = this.#segments[layer][h];
    const E = entryWords(this.shape.headDim);
    const n = keep.length;
    const buffer = capacity > 0
      ? this.gpu.createBuffer(capacity * E * 4, `kv ${layer}.${h}`)
      : null;
    if (n > 0 && buffer !== null) {
      // A few runs of consecutive entries are copies; anything else one gather dispatch.
      const runs: [number, number, number][] = [];
      for (let i = 0; i < n;) {
        let j = i + 1;
        while (j < n && keep[j] === keep[j - 1] + 1) j++;
        runs.push([keep[i], i, j - i]);
        i = j;
      }
      if (runs.length <= 4) {
        for (const [from, to, count] of runs) {
          rec.copy(seg.buffer!, from * E * 4, buffer, to * E * 4, count * E * 4);
        }
      } else {
        const indices = this.gpu.upload(Uint32Array.from(keep), "keep");
        gatherRows(rec, { keep: indices, src: seg.buffer!, dst: buffer }, { rows: n, rowWords: E });
        rec.releaseAfter(indices);
      }
    }
    rec.releaseAfter(seg.buffer);
    const positions = new Int32Array(capacity);
    for (let i = 0; i < n; i++) positions[i] = seg.positions[keep[i]];
    this.#segments[layer][h] = { buffer, capacity, length: n, positions };
  }

  /** As CpuKvStore's: sliding layers drop what no later query sees, by the lazy rule. */
  trimWindows(): void {
    if (this.shape.slidingWindows.every((w) => w === null)) return;
    const rec = this.gpu.recorder();
    for (let l = 0; l < this.shape.numLayers; l++) {
      this.#trimWindow(rec, l, this.#nextPosition, false);
    }
    rec.submit();
  }

  /**
   * Sliding layers: drop entries no query from `nextQueryPosition` on can see, except those
   * before the last mark. Lazy unless `eager`, with CpuKvStore's exact rule, so both stores
   * hold the same entries in the same capacity: CpuKvStore moves them down in place, which a
   * buffer copy cannot (source and destination must differ), so here they move to a new buffer
   * of the old capacity; over twice what they need, both reallocate to fit.
   */
  #trimWindow(rec: Recorder, layer: number, nextQueryPosition: number, eager: boolean): void {
    const window = this.shape.slidingWindows[layer];
    if (window === null) return;
    for (let h = 0; h < this.shape.numKvHeads; h++) {
      const seg = this.#segments[layer][h];
      let from = 0;
      while (from < seg.length && seg.positions[from] < this.#markPosition) from++;
      let to = from;
      while (to < seg.length && nextQueryPosition - seg.positions[to] >= window) to++;
      const dead = to - from;
      if (dead === 0 || (!eager && dead < 64 && dead * 4 < window)) continue;
      const keep = new Int32Array(seg.length - dead);
      for (let i = 0; i < from; i++) keep[i] = i;
      for (let i = to; i < seg.length; i++) keep[from + i - to] = i;
      this.#gather(rec, layer, h, keep, trimmedCapacity(seg.capacity, keep.length));
    }
  }
}

/** Host statistics per KV head from a readback of a {@linkcode DeviceStats} buffer. */
export function splitStats(stats: DeviceStats, read: Readback): HeadStats[] {
  const all = new Float32Array(read.data());
  return stats.heads.map(({ offset, length }) => {
    const head: HeadStats = {};
    stats.names.forEach((name, k) => {
      head[name] = all.slice(offset + k * length, offset + (k + 1) * length);
    });
    return head;
  });
}
