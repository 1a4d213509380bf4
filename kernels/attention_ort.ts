/**
 * Attention over the ragged KV store through onnxruntime: one session call per layer, each KV
 * head's keys, values and positions passed as their own inputs (their lengths differ after
 * eviction). The causal and sliding-window mask is built inside the graph from the entries'
 * original positions, and the optional statistics are reductions of the same probabilities,
 * so nothing of size queries × keys leaves the graph.
 *
 * Graph per KV head h (T queries, group G, n_h entries):
 *   s = scale · q_h k_hᵀ [G, T, n_h] (tanh soft-capped if asked)
 *   visible = 0 ≤ qPos − kPos < window;  p = softmax(s + (visible ? 0 : −∞))
 *   out_h = p v_h [G, T, d]
 *
 * @module
 */

import type { AttendOptions, AttendResult, AttentionExecutor, HeadSegment, HeadStats } from "./kv_store.ts";
import { GraphBuilder } from "./onnx/graph.ts";
import { createSession, type OrtSession, type OrtTensor, readF32, tensorF32, tensorI32, tensorI64 } from "./ort.ts";

type StatName = "columnSum" | "columnMax" | "lastWindowMean" | "lastRow";
const STAT_NAMES: StatName[] = ["columnSum", "columnMax", "lastWindowMean", "lastRow"];

interface Variant {
  heads: number;
  group: number;
  headDim: number;
  softcap: number | null;
  stats: StatName[];
  gqa: "mean" | "max";
}

const NO_WINDOW = 2 ** 31 - 1;

function buildAttentionGraph(v: Variant): Uint8Array {
  const { heads: H, group: G, headDim: d } = v;
  const g = new GraphBuilder(`attention_h${H}_g${G}_d${d}`);
  const q = g.input("q", "float32", ["T", H * G, d]);
  const qPos = g.reshape(g.input("q_pos", "int32", ["T"]), [-1, 1]);
  const window = g.input("window", "int32", [1]);
  const zero = g.initializer("zero_i32", { dataType: "int32", dims: [], data: Int32Array.of(0) });
  const negInf = g.constantF32(-Infinity);
  const zeroF = g.constantF32(0);
  // [T, H·G, d] → [H, G·T, d]: rows of head h ordered (g, t).
  const qHeads = g.reshape(g.transpose(g.reshape(q, [0, H, G, d]), [1, 2, 0, 3]), [H, -1, d]);
  const perHead = H === 1 ? [qHeads] : g.nodeMulti("Split", [qHeads], H, { axis: { int: 0 } });
  const outs: string[] = [];
  for (let h = 0; h < H; h++) {
    const k = g.input(`k${h}`, "float32", [`n${h}`, d]);
    const val = g.input(`v${h}`, "float32", [`n${h}`, d]);
    const kPos = g.reshape(g.input(`k_pos${h}`, "int32", [`n${h}`]), [1, -1]);
    const qh = g.reshape(perHead[h], [-1, d]);
    // Queries arrive pre-scaled, so this is scale · q kᵀ, [G·T, n] viewed as [G, T, n].
    const scores = g.node("Unsqueeze", [g.gemm(qh, k), g.constantI64([0])]);
    let s = g.reshape(scores, [G, -1, 0]);
    if (v.softcap !== null) {
      const cap = g.constantF32(v.softcap);
      s = g.node("Mul", [g.node("Tanh", [g.node("Div", [s, cap])]), cap]);
    }
    const diff = g.node("Sub", [qPos, kPos]); // [T, n]
    const visible = g.node("And", [
      g.node("GreaterOrEqual", [diff, zero]),
      g.node("Less", [diff, window]),
    ]);
    const bias = g.node("Where", [visible, zeroF, negInf]);
    const p = g.node("Softmax", [g.node("Add", [s, bias])], { axis: { int: -1 } }); // [G, T, n]
    outs.push(g.node("MatMul", [p, val])); // [G, T, d]
    for (const stat of v.stats) {
      let perGroup: string; // [G, n]
      if (stat === "columnSum") perGroup = g.reduce("ReduceSum", p, [1], { keepdims: false });
      else if (stat === "columnMax") perGroup = g.reduce("ReduceMax", p, [1], { keepdims: false });
      else {
        const start = stat === "lastRow" ? g.constantI64([-1]) : g.input(`w_start${h}`, "int64", [1]);
        const rows = g.node("Slice", [p, start, g.constantI64([2 ** 53]), g.constantI64([1])]);
        perGroup = g.reduce("ReduceMean", rows, [1], { keepdims: false });
      }
      const reduced = g.reduce(v.gqa === "max" ? "ReduceMax" : "ReduceMean", perGroup, [0], {
        keepdims: false,
      });
      g.output(reduced, { name: `${stat}${h}`, dataType: "float32", shape: [`n${h}`] });
    }
  }
  const all = H === 1 ? outs[0] : g.node("Concat", outs, { axis: { int: 0 } }); // [H·G, T, d]
  g.output(g.transpose(all, [1, 0, 2]), { name: "out", dataType: "float32", shape: ["T", H * G, d] });
  return g.build();
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
  readonly #sessions = new Map<string, Promise<OrtSession>>();
  readonly #threads: number | undefined;

  constructor(options: { threads?: number } = {}) {
    this.#threads = options.threads;
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
    const stats = STAT_NAMES.filter((name) =>
      name === "lastWindowMean" ? (req?.lastWindowMean ?? 0) > 0 : req?.[name] === true
    );
    const variant: Variant = {
      heads: H,
      group,
      headDim,
      softcap: options.softcap ?? null,
      stats,
      gqa: req?.gqa ?? "mean",
    };
    const session = await this.#session(variant);
    // Scale the queries here rather than baking the scale into the graph.
    const scaled = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) scaled[i] = q[i] * options.scale;
    const feeds: Record<string, OrtTensor> = {
      q: tensorF32(scaled, [T, H * group, headDim]),
      q_pos: tensorI32(positions, [T]),
      window: tensorI32(Int32Array.of(options.window ?? NO_WINDOW), [1]),
    };
    const wStart = BigInt64Array.of(BigInt(-Math.min(req?.lastWindowMean ?? 1, T)));
    for (let h = 0; h < H; h++) {
      const seg = segments[h];
      const n = seg.length;
      feeds[`k${h}`] = tensorF32(seg.keys.subarray(0, n * headDim), [n, headDim]);
      feeds[`v${h}`] = tensorF32(seg.values.subarray(0, n * headDim), [n, headDim]);
      feeds[`k_pos${h}`] = tensorI32(seg.positions.subarray(0, n), [n]);
      if (stats.includes("lastWindowMean")) feeds[`w_start${h}`] = tensorI64(wStart, [1]);
    }
    const result = await session.run(feeds);
    let headStats: HeadStats[] | null = null;
    if (stats.length > 0) {
      headStats = [];
      for (let h = 0; h < H; h++) {
        const s: HeadStats = {};
        for (const name of stats) s[name] = readF32(result[`${name}${h}`]);
        headStats.push(s);
      }
    }
    return { output: readF32(result.out), stats: headStats };
  }

  #session(v: Variant): Promise<OrtSession> {
    const key = JSON.stringify(v);
    let session = this.#sessions.get(key);
    if (session === undefined) {
      session = createSession(buildAttentionGraph(v), { name: `attention ${key}`, threads: this.#threads });
      this.#sessions.set(key, session);
    }
    return session;
  }
}
