/**
 * Attention over the ragged KV store through onnxruntime: one session call per layer, each KV
 * head's keys and values passed as their own inputs (their lengths differ after eviction).
 * The causal and sliding-window mask comes from the entries' original positions, and the
 * optional statistics are reductions of the same probabilities inside the graph, so nothing
 * of size queries × keys leaves it.
 *
 * Graph per KV head h (T queries, group G, n_h entries):
 *   s = (scale · q_h) k_hᵀ [G, T, n_h] (tanh soft-capped if asked)
 *   p = softmax(s + bias_h), bias_h = 0 where 0 ≤ qPos − kPos < window, else −∞
 *   out_h = p v_h [G, T, d]
 * Head-major queries ([heads, T, d], `layout: "head"`) are fed as views and the output is
 * returned head-major, one block per KV head, so nothing is transposed outside the graphs.
 * The bias is built here from positions, once per distinct position set (heads that evicted
 * alike share it, and so do the layers of one chunk), and left out when one query in a global
 * layer sees every entry.
 *
 * @module
 */

import {
  type AttendOptions,
  type AttendResult,
  type AttentionExecutor,
  type HeadSegment,
  type HeadStats,
  requestedStats,
  type StatName,
} from "./kv_store.ts";
import { GraphBuilder } from "./onnx/graph.ts";
import {
  createSession,
  type OrtSession,
  type OrtTensor,
  readF32,
  tensorF32,
  tensorI64,
} from "./ort.ts";

interface Variant {
  heads: number;
  group: number;
  headDim: number;
  /** Multiplier on the queries, applied in the graph. */
  scale: number;
  softcap: number | null;
  /** Whether an additive mask input (0 or −∞) is applied; not needed for one query in a global layer. */
  masked: boolean;
  /** One query per query head (a decode step): {@linkcode addDecodeHead}'s graph. */
  decode: boolean;
  /**
   * Decode only: both products over blocks of {@linkcode DECODE_BLOCK} entries (every head
   * holds at least two blocks' worth), see {@linkcode addBlockedDecodeHead}.
   */
  blocked: boolean;
  /**
   * Decode only: the compact form over short caches (no head holds more than
   * {@linkcode COMPACT_DECODE_BYTES} of values), see {@linkcode addCompactDecodeHead}.
   */
  compact: boolean;
  stats: StatName[];
  gqa: "mean" | "max";
}

/** onnxruntime's contributed operators (FusedMatMul). */
const CONTRIB_OPSET = { domain: "com.microsoft", version: 1 };

/** `cap · tanh(s / cap)` when the model soft-caps its attention logits, else `s`. */
function softcapped(g: GraphBuilder, s: string, softcap: number | null): string {
  if (softcap === null) return s;
  const cap = g.constantF32(softcap);
  return g.node("Mul", [g.node("Tanh", [g.node("Div", [s, cap])]), cap]);
}

/**
 * The compact decode form's scores `scale · k qᵀ` [n, G] for head h (soft-capped), for
 * qᵀ [d, G]: over a short cache one product costs less than the nodes of {@linkcode oneRowScores}.
 */
function decodeScores(g: GraphBuilder, v: Variant, h: number, k: string): string {
  const qT = g.node("Mul", [
    g.input(`q${h}`, "float32", [v.headDim, v.group]),
    g.constantF32(v.scale),
  ]);
  return softcapped(g, g.node("MatMul", [k, qT]), v.softcap);
}

/** A decode step's queries of head h, `scale · q` [G, d]. */
function scaledQueries(g: GraphBuilder, v: Variant, h: number): string {
  return g.node("Mul", [
    g.input(`q${h}`, "float32", [v.group, v.headDim]),
    g.constantF32(v.scale),
  ]);
}

/**
 * `q kᵀ` for queries [G, d] and keys [..., B, d] as one-row products, one per query and batch
 * of keys: [..., G, 1, B]. onnxruntime's GEMM kernel computes a one-row product with a
 * transposed B operand on the stored rows in place (with more rows, or with k as the A operand
 * of k qᵀ, it packs or streams them through a kernel built for wide products: 15.0 against
 * 8.8 ms for 32768 entries × 8 KV heads here). MatMul has no transposed form, so this is
 * com.microsoft's FusedMatMul, with alpha 1: the in-place kernel takes only unscaled products.
 */
function oneRowScores(g: GraphBuilder, v: Variant, q: string, keys: string): string {
  return g.node(
    "FusedMatMul",
    [g.reshape(q, [v.group, 1, v.headDim]), keys],
    { transB: { int: 1 }, alpha: { float: 1 } },
    { domain: CONTRIB_OPSET.domain },
  );
}

/**
 * A decode step's one statistic for head h, `stat${h}` [1, n]: the probabilities `p` reduced
 * over the query group (`axis` of p, which holds the group) by the request's GQA reduction.
 */
function addDecodeStat(g: GraphBuilder, v: Variant, h: number, p: string, axis: number): void {
  const op = v.gqa === "max" ? "ReduceMax" : "ReduceMean";
  const reduced = g.reshape(g.reduce(op, p, [axis], { keepdims: false }), [1, -1]);
  g.output(reduced, { name: `stat${h}`, dataType: "float32", shape: [1, `n${h}`] });
}

/**
 * Values per head (bytes) up to which a decode step takes {@linkcode addCompactDecodeHead}:
 * while v fits in a core's L2 cache, packing it for one product costs less than the nodes the
 * row form adds.
 */
export const COMPACT_DECODE_BYTES = 512 * 1024;

/**
 * Head h of a decode step over a short cache in four nodes, for qᵀ [d, G]:
 *   s = k qᵀ [n, G] (the keys streamed in place, as in {@linkcode addDecodeHead});
 *   p = softmax over the entries (axis 0), with the window's mask added as a column;
 *   out = pᵀ v [G, d], one Gemm (transA) that packs v once.
 * A step there is mostly per-node overhead: 8 KV heads × 64 entries (G = 2, d = 128) in 113
 * against 214 µs for the row form; 2 heads × 1500 entries (G = 3, d = 64, the embedded
 * model's shape) in 155–170 against 179–191 µs.
 */
function addCompactDecodeHead(
  g: GraphBuilder,
  v: Variant,
  h: number,
  kv: { k: string; v: string },
): void {
  const { group: G, headDim: d } = v;
  let s = decodeScores(g, v, h, kv.k); // [n, G]
  if (v.masked) {
    const bias = g.reshape(g.input(`bias${h}`, "float32", [1, `n${h}`]), [-1, 1]);
    s = g.node("Add", [s, bias]);
  }
  const p = g.node("Softmax", [s], { axis: { int: 0 } }); // [n, G]
  g.output(g.node("Gemm", [p, kv.v], { transA: { int: 1 } }), {
    name: `out${h}`,
    dataType: "float32",
    shape: [G, d],
  });
  if (v.stats.length > 0) addDecodeStat(g, v, h, p, 1);
}

/**
 * Head h of a decode step over a long cache (every head holds at least two blocks of
 * {@linkcode DECODE_BLOCK} entries). Keys and values come as views of the stored rows: whole
 * blocks [m/B, 1, B, d] plus a tail [r, d] (1 ≤ r ≤ B), and both products run as batches of
 * one-row products, which the GEMM kernel computes on the stored rows in place, the batches
 * spread over the threads and the G rows of a block meeting it while it is in cache:
 *   s_b = q k_bᵀ, one batched [G, 1, d] × [m/B, 1, B, d]ᵀ ({@linkcode oneRowScores}), and the
 *         tail's [G, 1, d] × [1, r, d]ᵀ;
 *   p = softmax over [G, n], with the window's mask added when there is one;
 *   out = Σ_b p[:, block b] v_b, one batched [m/B, G, 1, B] × [m/B, 1, B, d], plus the tail's
 *         [G, 1, r] × [1, r, d].
 * 32768 entries × 8 KV heads, G = 2, d = 128, here, with pools that slept between nodes: the
 * scores in 8.8 ms (one ReduceSum over the same keys, the read ceiling: 4.0 ms); p · v in 4.1 ms
 * against 7.8–9.2 ms for one [1, n] × [n, d] row at a time; the whole step in 19.4 against
 * 24.5 ms with the scores as k qᵀ. With pools that spin within a run (kernels/ort.ts), on a
 * faster day of the same machine: the scores in 4.6 ms, p · v in 4.1 ms, the step in 9–11 ms.
 *
 * With one query every statistic is the GQA reduction (mean or max) of the G rows of p.
 */
function addBlockedDecodeHead(
  g: GraphBuilder,
  v: Variant,
  h: number,
  kv: { k: string; v: string },
): void {
  const { group: G, headDim: d } = v;
  const B = DECODE_BLOCK;
  const q = scaledQueries(g, v, h);
  const mainScores = oneRowScores(g, v, q, kv.k); // [m/B, G, 1, B]
  const tailScores = oneRowScores(g, v, q, g.reshape(`${kv.k}_tail`, [1, -1, d])); // [G, 1, r]
  let s = g.node("Concat", [
    g.reshape(g.transpose(mainScores, [1, 0, 2, 3]), [G, -1]),
    g.reshape(tailScores, [G, -1]),
  ], { axis: { int: 1 } });
  s = softcapped(g, s, v.softcap);
  if (v.masked) s = g.node("Add", [s, g.input(`bias${h}`, "float32", [1, `n${h}`])]);
  const p = g.node("Softmax", [s], { axis: { int: -1 } }); // [G, n]
  const [main, tail] = g.nodeMulti("Split", [p, g.input(`split${h}`, "int64", [2])], 2, {
    axis: { int: 1 },
  });
  const blocks = g.reshape(g.transpose(g.reshape(main, [G, -1, B]), [1, 0, 2]), [-1, G, 1, B]);
  const summed = g.reduce("ReduceSum", g.node("MatMul", [blocks, kv.v]), [0], {
    keepdims: false,
  });
  const tailOut = g.node("MatMul", [
    g.reshape(tail, [G, 1, -1]),
    g.reshape(`${kv.v}_tail`, [1, -1, d]),
  ]); // [G, 1, d]
  const out = g.node("Add", [g.reshape(summed, [G, d]), g.reshape(tailOut, [G, d])]);
  g.output(out, { name: `out${h}`, dataType: "float32", shape: [G, d] });
  if (v.stats.length > 0) addDecodeStat(g, v, h, p, 0);
}

/**
 * Head h of a decode step (one query per query head) where some head holds more than
 * {@linkcode COMPACT_DECODE_BYTES} of values, for q [G, d]:
 *   s = q kᵀ as G one-row products on the stored keys ({@linkcode oneRowScores}) [G, n];
 *   p = softmax over [G, n], with the window's mask added when there is one;
 *   out_r = p_r v [1, d] for each of the G rows: with M = 1 the GEMM kernel reads v in place
 *       (for M > 1 it packs a copy of v), and the second row finds v in cache.
 * 2048 entries × 8 KV heads × 28 layers, interleaved with the [G, d] form: 0.93× the time.
 *
 * Over long caches v no longer stays in cache between the rows, and one M = 1 product runs on
 * one thread: {@linkcode addBlockedDecodeHead} takes those.
 *
 * With one query every statistic is the GQA reduction (mean or max) of the G rows of p.
 */
function addDecodeHead(g: GraphBuilder, v: Variant, h: number, kv: { k: string; v: string }): void {
  const { group: G, headDim: d } = v;
  const scores = oneRowScores(g, v, scaledQueries(g, v, h), g.reshape(kv.k, [1, -1, d]));
  let s = softcapped(g, g.reshape(scores, [G, -1]), v.softcap); // [G, n]
  if (v.masked) s = g.node("Add", [s, g.input(`bias${h}`, "float32", [1, `n${h}`])]);
  const p = g.node("Softmax", [s], { axis: { int: -1 } });
  const rows = G === 1 ? [p] : g.nodeMulti("Split", [p], G, { axis: { int: 0 } });
  for (let r = 0; r < G; r++) {
    g.output(g.node("MatMul", [rows[r], kv.v]), {
      name: `out${h}_${r}`,
      dataType: "float32",
      shape: [1, d],
    });
  }
  if (v.stats.length > 0) {
    const reduced = G === 1 ? p : g.node(v.gqa === "max" ? "Max" : "Mean", rows);
    g.output(reduced, { name: `stat${h}`, dataType: "float32", shape: [1, `n${h}`] });
  }
}

function buildAttentionGraph(v: Variant): Uint8Array {
  const { heads: H, group: G, headDim: d } = v;
  const g = new GraphBuilder(`attention_h${H}_g${G}_d${d}`, {
    extraOpsets: v.decode && !v.compact ? [CONTRIB_OPSET] : [],
  });
  for (let h = 0; h < H; h++) {
    if (v.blocked) {
      // Whole blocks of the stored rows and the tail after them (see addBlockedDecodeHead).
      const kv = { k: `k${h}`, v: `v${h}` };
      for (const name of [kv.k, kv.v]) {
        g.input(name, "float32", [`b${h}`, 1, DECODE_BLOCK, d]);
        g.input(`${name}_tail`, "float32", [`r${h}`, d]);
      }
      addBlockedDecodeHead(g, v, h, kv);
      continue;
    }
    const k = g.input(`k${h}`, "float32", [`n${h}`, d]);
    const val = g.input(`v${h}`, "float32", [`n${h}`, d]);
    if (v.compact) {
      addCompactDecodeHead(g, v, h, { k, v: val });
      continue;
    }
    if (v.decode) {
      addDecodeHead(g, v, h, { k, v: val });
      continue;
    }
    const qIn = g.input(`q${h}`, "float32", ["GT", d]); // rows ordered (g, t)
    const qh = g.node("Mul", [qIn, g.constantF32(v.scale)]);
    // q · kᵀ as MatMul on a transposed k: with k a run-time input, onnxruntime's Gemm(transB)
    // ran at half the rate of this form in isolation (1024 × 2048 × 128: 4.6 vs 2.3 ms here);
    // inside this graph the layer's attention gained a few percent.
    let s = g.node("MatMul", [qh, g.transpose(k, [1, 0])]); // scale · q kᵀ [G·T, n]
    s = g.reshape(g.node("Unsqueeze", [s, g.constantI64([0])]), [G, -1, 0]);
    s = softcapped(g, s, v.softcap);
    if (v.masked) s = g.node("Add", [s, g.input(`bias${h}`, "float32", ["T", `n${h}`])]);
    const p = g.node("Softmax", [s], { axis: { int: -1 } }); // [G, T, n]
    // p · v as one 2-D product: the batched [G, T, n] form runs about 25 % slower.
    const out = g.node("MatMul", [g.node("Flatten", [p], { axis: { int: 2 } }), val]); // [G·T, d]
    g.output(g.reshape(out, [G, -1, d]), {
      name: `out${h}`,
      dataType: "float32",
      shape: [G, "T", d],
    });
    for (const stat of v.stats) {
      let perGroup: string; // [G, n]
      if (stat === "columnSum") perGroup = g.reduce("ReduceSum", p, [1], { keepdims: false });
      else if (stat === "columnMax") perGroup = g.reduce("ReduceMax", p, [1], { keepdims: false });
      else {
        const start = stat === "lastRow"
          ? g.constantI64([-1])
          : g.input(`w_start${h}`, "int64", [1]);
        const rows = g.node("Slice", [p, start, g.constantI64([2 ** 53]), g.constantI64([1])]);
        perGroup = g.reduce("ReduceMean", rows, [1], { keepdims: false });
      }
      const reduced = g.reduce(v.gqa === "max" ? "ReduceMax" : "ReduceMean", perGroup, [0], {
        keepdims: false,
      });
      g.output(reduced, { name: `${stat}${h}`, dataType: "float32", shape: [`n${h}`] });
    }
  }
  return g.build();
}

/**
 * The additive mask of queries at `qPos` over entries at `kPos` (both ascending): 0 where
 * 0 ≤ qPos − kPos < window, −∞ elsewhere. Visible entries form one run per row, so each row is
 * two fills.
 */
export function maskBias(qPos: Int32Array, kPos: Int32Array, window: number | null): Float32Array {
  const n = kPos.length;
  const bias = new Float32Array(qPos.length * n).fill(-Infinity);
  let lo = 0;
  let hi = 0;
  for (let t = 0; t < qPos.length; t++) {
    const p = qPos[t];
    while (hi < n && kPos[hi] <= p) hi++;
    if (window !== null) { while (lo < hi && p - kPos[lo] >= window) lo++; }
    bias.fill(0, t * n + lo, t * n + hi);
  }
  return bias;
}

/** Head h's queries from token-major [T, H·G, d] as [G·T, d], rows ordered (g, t). */
function headQueries(
  q: Float32Array,
  h: number,
  o: { T: number; H: number; group: number; headDim: number },
): Float32Array {
  const { T, H, group, headDim } = o;
  const out = new Float32Array(group * T * headDim);
  for (let g = 0; g < group; g++) {
    for (let t = 0; t < T; t++) {
      const src = ((t * H + h) * group + g) * headDim;
      out.set(q.subarray(src, src + headDim), (g * T + t) * headDim);
    }
  }
  return out;
}

/** [rows, cols] → [cols, rows]. */
function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

/**
 * Entries per block of the blocked decode product ({@linkcode addDecodeHead}); decode steps
 * where every head holds at least two blocks use it.
 */
export const DECODE_BLOCK = 1024;

/** A bias tensor and the positions it was built for. */
interface MaskEntry {
  qPos: Int32Array;
  kPos: Int32Array;
  window: number | null;
  bias: OrtTensor;
}

/**
 * Masks kept for reuse: one for the global and one for the sliding-window layers of a chunk.
 * Each is T × n floats (8 MiB for 512 queries over 4096 entries), so few are kept.
 */
const MASKS_KEPT = 2;

function samePositions(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * An {@linkcode AttentionExecutor} running on onnxruntime's CPU provider. Sessions are built
 * lazily, one per shape and statistics variant.
 *
 * @example
 * ```ts
 * const store = new CpuKvStore(shape, { executor: new OrtAttention() });
 * ```
 */
export class OrtAttention implements AttentionExecutor {
  /** Takes head-major queries as views (see the module notes). */
  readonly headMajor = true;
  readonly #sessions = new Map<string, Promise<OrtSession>>();
  readonly #threads: number | undefined;
  readonly #profile: string | undefined;
  /** The last masks built: every layer of a chunk asks for the same one. */
  readonly #masks: MaskEntry[] = [];
  /**
   * `threads`: intra-op threads (default: cores); `profile`: ORT profile file prefix of every
   * session (written when {@linkcode OrtAttention.release} releases them).
   */
  constructor(options: { threads?: number; profile?: string } = {}) {
    this.#threads = options.threads;
    this.#profile = options.profile;
  }

  async attend(
    segments: readonly HeadSegment[],
    query: { q: Float32Array; positions: Int32Array; group: number; headDim: number },
    options: AttendOptions,
  ): Promise<AttendResult> {
    const { q, positions, group, headDim } = query;
    const H = segments.length;
    const T = positions.length;
    const req = options.stats;
    const stats = requestedStats(options);
    const window = options.window ?? null;
    // With one query in a global layer every stored entry is visible: no mask at all.
    const masked = T > 1 || window !== null;
    const decode = T === 1;
    const blocked = decode && segments.every((seg) => seg.length >= 2 * DECODE_BLOCK);
    const compact = decode && !blocked &&
      segments.every((seg) => seg.length * headDim * 4 <= COMPACT_DECODE_BYTES);
    // One query: the token-major and head-major layouts are the same array.
    const headMajor = options.layout === "head" || decode;
    const variant: Variant = {
      heads: H,
      group,
      headDim,
      scale: options.scale,
      softcap: options.softcap ?? null,
      masked,
      decode,
      blocked,
      compact,
      stats,
      gqa: req?.gqa ?? "mean",
    };
    const session = await this.#session(variant);
    const feeds: Record<string, OrtTensor> = {};
    const wStart = BigInt64Array.of(BigInt(-Math.min(req?.lastWindowMean ?? 1, T)));
    const block = group * T * headDim; // one KV head's queries and output
    for (let h = 0; h < H; h++) {
      const seg = segments[h];
      const n = seg.length;
      const qh = headMajor
        ? q.subarray(h * block, (h + 1) * block)
        : headQueries(q, h, { T, H, group, headDim });
      if (blocked) {
        // Whole blocks, then a tail of 1…B entries: views of the stored keys and values.
        const m = Math.floor((n - 1) / DECODE_BLOCK) * DECODE_BLOCK;
        feeds[`q${h}`] = tensorF32(qh, [group, headDim]);
        for (const [name, data] of [["k", seg.keys], ["v", seg.values]] as const) {
          feeds[`${name}${h}`] = tensorF32(data.subarray(0, m * headDim), [
            m / DECODE_BLOCK,
            1,
            DECODE_BLOCK,
            headDim,
          ]);
          feeds[`${name}${h}_tail`] = tensorF32(data.subarray(m * headDim, n * headDim), [
            n - m,
            headDim,
          ]);
        }
        feeds[`split${h}`] = tensorI64(BigInt64Array.of(BigInt(m), BigInt(n - m)), [2]);
      } else if (decode) {
        feeds[`q${h}`] = compact
          ? tensorF32(transpose(qh, group, headDim), [headDim, group])
          : tensorF32(qh, [group, headDim]);
        feeds[`k${h}`] = tensorF32(seg.keys.subarray(0, n * headDim), [n, headDim]);
        feeds[`v${h}`] = tensorF32(seg.values.subarray(0, n * headDim), [n, headDim]);
      } else {
        feeds[`q${h}`] = tensorF32(qh, [group * T, headDim]);
        if (stats.includes("lastWindowMean")) feeds[`w_start${h}`] = tensorI64(wStart, [1]);
        feeds[`k${h}`] = tensorF32(seg.keys.subarray(0, n * headDim), [n, headDim]);
        feeds[`v${h}`] = tensorF32(seg.values.subarray(0, n * headDim), [n, headDim]);
      }
      if (masked) feeds[`bias${h}`] = this.#mask(positions, seg.positions.subarray(0, n), window);
    }
    const result = await session.run(feeds);
    let headStats: HeadStats[] | null = null;
    if (stats.length > 0) {
      headStats = [];
      for (let h = 0; h < H; h++) {
        const s: HeadStats = {};
        // One query: every statistic is the same reduction, given once per head by the graph.
        for (const [i, name] of stats.entries()) {
          s[name] = decode
            ? (i === 0 ? readF32(result[`stat${h}`]) : readF32(result[`stat${h}`]).slice())
            : readF32(result[`${name}${h}`]);
        }
        headStats.push(s);
      }
    }
    const output = new Float32Array(q.length);
    for (let h = 0; h < H; h++) {
      if (blocked || compact) {
        output.set(readF32(result[`out${h}`]), h * block);
      } else if (decode) {
        for (let r = 0; r < group; r++) {
          output.set(readF32(result[`out${h}_${r}`]), (h * group + r) * headDim);
        }
      } else if (headMajor) {
        output.set(readF32(result[`out${h}`]), h * block);
      } else {
        const out = readF32(result[`out${h}`]);
        for (let g = 0; g < group; g++) {
          for (let t = 0; t < T; t++) {
            const src = (g * T + t) * headDim;
            output.set(out.subarray(src, src + headDim), ((t * H + h) * group + g) * headDim);
          }
        }
      }
    }
    return { output, stats: headStats };
  }

  /**
   * The bias tensor of queries at `qPos` over entries at `kPos`, reused while the positions are
   * the same: heads that evicted alike, and the layers of one chunk, share one.
   */
  #mask(qPos: Int32Array, kPos: Int32Array, window: number | null): OrtTensor {
    for (const m of this.#masks) {
      if (m.window === window && samePositions(m.qPos, qPos) && samePositions(m.kPos, kPos)) {
        return m.bias;
      }
    }
    const bias = tensorF32(maskBias(qPos, kPos, window), [qPos.length, kPos.length]);
    // Copies: the store's position views change as it grows and evicts.
    this.#masks.unshift({ qPos: qPos.slice(), kPos: kPos.slice(), window, bias });
    this.#masks.length = Math.min(this.#masks.length, MASKS_KEPT);
    return bias;
  }

  /** Release every session built so far (writing their profiles when profiling). */
  async release(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const session of sessions) await (await session).release();
  }

  #session(v: Variant): Promise<OrtSession> {
    const key = JSON.stringify(v);
    let session = this.#sessions.get(key);
    if (session === undefined) {
      session = createSession(buildAttentionGraph(v), {
        name: `attention ${key}`,
        threads: this.#threads,
        profile: this.#profile,
      });
      this.#sessions.set(key, session);
    }
    return session;
  }
}
