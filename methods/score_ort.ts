/**
 * The heavy arithmetic of the attention-based scorers, on onnxruntime graphs: SnapKV's
 * observation-window attention, Expected Attention's query statistics and expected logits, and
 * R-KV's key redundancy (the search for each key's last near-duplicate).
 * One session per shape variant, built on first use and shared by every scorer of the process
 * (as kernels/attention_ort.ts does for attention). Inputs are host arrays, so the same code
 * serves both backends: on WebGPU the keys come from `KvStore.readEntries`.
 *
 * Everything of size queries × keys, keys × keys or keys × d × d stays inside the graphs (keys ×
 * keys in blocks of bounded size); the scorers keep only O(d²) statistics and O(keys) results.
 * Softmaxes run in f32, as the official code's do (spec §5: "fp32 softmax"); the small
 * statistics are merged in f64 on the host.
 *
 * @module
 */

import { maskBias } from "../kernels/attention_ort.ts";
import { GraphBuilder } from "../kernels/onnx/graph.ts";
import {
  createSession,
  type OrtSession,
  type OrtTensor,
  readF32,
  tensorF32,
} from "../kernels/ort.ts";

const sessions = new Map<string, Promise<OrtSession>>();

function session(key: string, build: () => Uint8Array): Promise<OrtSession> {
  let pending = sessions.get(key);
  if (pending === undefined) {
    pending = createSession(build(), { name: key });
    sessions.set(key, pending);
    pending.catch(() => sessions.delete(key));
  }
  return pending;
}

/**
 * Release every cached scoring session (tests; long-lived processes).
 *
 * @example
 * ```ts
 * await releaseScoringSessions();
 * ```
 */
export async function releaseScoringSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const pending of all) {
    try {
      await (await pending).release();
    } catch {
      // A session that failed to build has nothing to release.
    }
  }
}

/** How the query heads of a GQA group combine in {@linkcode windowAttention}. */
export type WindowGqa = "max-logits" | "mean-probs";

/**
 * One KV head's window problem: the window's queries, and the keys it offers them (leading
 * sink entries, then the entries to score).
 */
export interface WindowHead {
  /** The window: queries [W, query heads, d] (every head of the layer) and their positions. */
  window: { queries: Float32Array; positions: Int32Array };
  /** Sink keys [s, d] (may be empty) and their positions. */
  sinkKeys: Float32Array;
  sinkPositions: Int32Array;
  /** Keys [m, d] and positions of the entries to score. */
  keys: Float32Array;
  positions: Int32Array;
}

/**
 * Graph per KV head h (G group members, W_h visible window rows, s_h sinks, m_h keys):
 *   logits = q_h · [ks_h; kc_h]ᵀ                  [G, W, s + m] (q pre-scaled)
 *   max-logits: probs = softmax(max_g logits + bias)   [W, s + m], sum over W
 *   mean-probs: probs = softmax(logits + bias)         [G, W, s + m], sum over G and W
 */
function buildWindowGraph(v: { heads: number; group: number; headDim: number; gqa: WindowGqa }) {
  const { heads: H, group: G, headDim: d } = v;
  const g = new GraphBuilder(`window_attention_h${H}_g${G}_d${d}_${v.gqa}`);
  for (let h = 0; h < H; h++) {
    const q = g.input(`q${h}`, "float32", [G, `W${h}`, d]);
    const ks = g.input(`ks${h}`, "float32", [`s${h}`, d]);
    const kc = g.input(`kc${h}`, "float32", [`m${h}`, d]);
    const bias = g.input(`bias${h}`, "float32", [`W${h}`, `n${h}`]);
    const sinkLogits = g.node("MatMul", [q, g.transpose(ks, [1, 0])]);
    const keyLogits = g.node("MatMul", [q, g.transpose(kc, [1, 0])]);
    let logits = g.node("Concat", [sinkLogits, keyLogits], { axis: { int: -1 } });
    if (v.gqa === "max-logits") logits = g.reduce("ReduceMax", logits, [0], { keepdims: false });
    const probs = g.node("Softmax", [g.node("Add", [logits, bias])], { axis: { int: -1 } });
    const axes = v.gqa === "max-logits" ? [0] : [0, 1];
    g.output(g.reduce("ReduceSum", probs, axes, { keepdims: false }), {
      name: `sum${h}`,
      dataType: "float32",
      shape: [`n${h}`],
    });
  }
  return g.build();
}

/**
 * Mean attention of a window of queries over each KV head's sinks and keys (SnapKV): for each
 * query t, softmax (f32) over the keys it may see (key position ≤ query position) of
 * scale·q·k, then the mean over the window's queries. `max-logits` takes the max over the
 * group's query heads on the logits before the softmax (official SnapKV, spec §5);
 * `mean-probs` averages the group's probabilities (kvpress SnapKV, spec §10). A query that
 * sees no key adds nothing (the mean still divides by every window query). Returns, per head,
 * s + m values, the sinks' first. One session call for all heads.
 *
 * @example
 * ```ts
 * const [probs] = await windowAttention([{ window, sinkKeys, sinkPositions, keys, positions }], {
 *   group: 2, headDim: 128, scale: 128 ** -0.5, gqa: "max-logits",
 * });
 * ```
 */
export async function windowAttention(
  heads: readonly WindowHead[],
  o: { group: number; headDim: number; scale: number; gqa: WindowGqa },
): Promise<Float64Array[]> {
  const { group: G, headDim: d } = o;
  const H = heads.length;
  if (H === 0) return [];
  const rowsPerQuery = o.gqa === "max-logits" ? 1 : G;
  // The session first: building it loads onnxruntime, which tensors need.
  const variant = { heads: H, group: G, headDim: d, gqa: o.gqa };
  const run = await session(JSON.stringify({ window: variant }), () => buildWindowGraph(variant));
  const feeds: Record<string, OrtTensor> = {};
  for (let h = 0; h < H; h++) {
    const { window, sinkKeys, sinkPositions, keys, positions } = heads[h];
    const W = window.positions.length;
    const queryHeads = W > 0 ? window.queries.length / (W * d) : 0;
    const s = sinkPositions.length;
    const n = s + positions.length;
    const kPos = new Int32Array(n);
    kPos.set(sinkPositions);
    kPos.set(positions, s);
    // Only rows that see at least one key (positions ascend, so the first is the earliest).
    const rows: number[] = [];
    for (let t = 0; t < W; t++) if (n > 0 && kPos[0] <= window.positions[t]) rows.push(t);
    const q = new Float32Array(G * rows.length * d);
    for (let g = 0; g < G; g++) {
      rows.forEach((t, r) => {
        const src = (t * queryHeads + h * G + g) * d;
        const dst = (g * rows.length + r) * d;
        for (let i = 0; i < d; i++) q[dst + i] = window.queries[src + i] * o.scale;
      });
    }
    const qPos = Int32Array.from(rows, (t) => window.positions[t]);
    feeds[`q${h}`] = tensorF32(q, [G, rows.length, d]);
    feeds[`ks${h}`] = tensorF32(sinkKeys, [s, d]);
    feeds[`kc${h}`] = tensorF32(keys, [positions.length, d]);
    feeds[`bias${h}`] = tensorF32(maskBias(qPos, kPos, null), [rows.length, n]);
  }
  const out = await run.run(feeds);
  return heads.map((head, h) => {
    const W = head.window.positions.length;
    const factor = W > 0 ? 1 / (W * rowsPerQuery) : 0;
    return Float64Array.from(readF32(out[`sum${h}`]), (x) => x * factor);
  });
}

/** Graph: S1 = Σ_t y, S2 = Σ_t y yᵀ per head, for y [H, T, d] (rows already shifted). */
function buildScatterGraph(v: { heads: number; headDim: number }): Uint8Array {
  const { heads: H, headDim: d } = v;
  const g = new GraphBuilder(`query_scatter_h${H}_d${d}`);
  const y = g.input("y", "float32", [H, "T", d]);
  const s1 = g.reduce("ReduceSum", y, [1], { keepdims: false });
  const s2 = g.node("MatMul", [g.transpose(y, [0, 2, 1]), y]); // [H, d, d]
  g.output(s1, { name: "s1", dataType: "float32", shape: [H, d] });
  g.output(s2, { name: "s2", dataType: "float32", shape: [H, d, d] });
  return g.build();
}

/**
 * Running mean and scatter (Σ (x − μ)(x − μ)ᵀ) of query rows per head, merged batch by batch
 * with the pairwise update of Chan et al., in f64. A batch's sums run on onnxruntime over its
 * rows shifted by the running mean (the first row for the first batch), so f32 sums lose no
 * digits to a large mean; single rows are merged on the host.
 *
 * @example
 * ```ts
 * const stats = new QueryMoments(16, 128);
 * await stats.addBatch(preRopeQueries, 512);
 * const cov = stats.scatter; // divide by N (or the head count) for a covariance
 * ```
 */
export class QueryMoments {
  readonly heads: number;
  readonly headDim: number;
  /** Rows merged so far. */
  count = 0;
  /** Mean per head [heads, d]. */
  readonly mean: Float64Array;
  /** Scatter per head [heads, d, d]. */
  readonly scatter: Float64Array;
  /** The shifted rows of the last batch, [heads, T, d] (reused). */
  #shifted = new Float32Array(0);

  constructor(heads: number, headDim: number) {
    this.heads = heads;
    this.headDim = headDim;
    this.mean = new Float64Array(heads * headDim);
    this.scatter = new Float64Array(heads * headDim * headDim);
  }

  /** Merge T rows x [T, heads, d]. */
  async addBatch(x: Float32Array, T: number): Promise<void> {
    if (T === 0) return;
    const { heads: H, headDim: d } = this;
    const run = await session(
      JSON.stringify({ scatter: H, d }),
      () => buildScatterGraph({ heads: H, headDim: d }),
    );
    const shift = this.count > 0 ? Float32Array.from(this.mean) : x.slice(0, H * d);
    if (this.#shifted.length < H * T * d) this.#shifted = new Float32Array(H * T * d);
    const y = this.#shifted.subarray(0, H * T * d);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const src = (t * H + h) * d;
        const dst = (h * T + t) * d;
        for (let i = 0; i < d; i++) y[dst + i] = x[src + i] - shift[h * d + i];
      }
    }
    const out = await run.run({ y: tensorF32(y, [H, T, d]) });
    this.#merge(shift, readF32(out.s1), readF32(out.s2), T);
  }

  /** Merge one row [heads, d] (host arithmetic). */
  addRow(row: Float32Array): void {
    const { heads: H, headDim: d } = this;
    this.#merge(row.subarray(0, H * d), new Float32Array(H * d), new Float32Array(H * d * d), 1);
  }

  /**
   * Merge a batch of nB rows given by its shift c and the sums S1 = Σ(x − c), S2 = Σ(x − c)(x − c)ᵀ:
   * its mean is c + S1/nB and its scatter S2 − S1 S1ᵀ/nB; one pass adds that scatter and the
   * between-means term nA·nB/n · δδᵀ.
   */
  #merge(shift: Float32Array, s1: Float32Array, s2: Float32Array, nB: number): void {
    const { heads: H, headDim: d } = this;
    const nA = this.count;
    const n = nA + nB;
    const weight = (nA * nB) / n;
    const delta = new Float64Array(d);
    for (let h = 0; h < H; h++) {
      for (let a = 0; a < d; a++) {
        delta[a] = shift[h * d + a] + s1[h * d + a] / nB - this.mean[h * d + a];
      }
      for (let a = 0; a < d; a++) {
        const row = (h * d + a) * d;
        const sa = s1[h * d + a] / nB;
        const wa = weight * delta[a];
        for (let b = 0; b < d; b++) {
          this.scatter[row + b] += s2[row + b] - sa * s1[h * d + b] + wa * delta[b];
        }
      }
      for (let a = 0; a < d; a++) this.mean[h * d + a] += (delta[a] * nB) / n;
    }
    this.count = n;
  }
}

/** One KV head's expected-attention problem. */
export interface ExpectedHead {
  /** Keys and values [n, d] of the entries to score. */
  keys: Float32Array;
  values: Float32Array;
  /** Per group member: μ′/√d [G, d] and Σ′/(2d) [G, d, d] (rotated, scaled). */
  mu: Float32Array;
  cov: Float32Array;
}

/**
 * Graph per KV head h: logits = μ k (+ rowsum((k Σ) ⊙ k)) [G, n], p = mean_g softmax(logits),
 * score = (p + ε)·‖v‖₂ (or p + ε).
 */
function buildExpectedGraph(
  v: { heads: number; group: number; headDim: number; covariance: boolean; valueNorm: boolean },
): Uint8Array {
  const { heads: H, group: G, headDim: d } = v;
  const g = new GraphBuilder(
    `expected_attention_h${H}_g${G}_d${d}_${v.covariance ? "cov" : "mean"}_${
      v.valueNorm ? "vnorm" : "plain"
    }`,
  );
  const epsilon = g.input("epsilon", "float32", [1]);
  for (let h = 0; h < H; h++) {
    const k = g.input(`k${h}`, "float32", [`n${h}`, d]);
    const mu = g.input(`mu${h}`, "float32", [G, d]);
    let logits = g.node("MatMul", [mu, g.transpose(k, [1, 0])]); // [G, n]
    if (v.covariance) {
      const cov = g.input(`cov${h}`, "float32", [G, d, d]);
      const kCov = g.node("MatMul", [k, cov]); // [G, n, d]
      const quad = g.reduce("ReduceSum", g.node("Mul", [kCov, k]), [-1], { keepdims: false });
      logits = g.node("Add", [logits, quad]);
    }
    const probs = g.node("Softmax", [logits], { axis: { int: -1 } });
    let score = g.node("Add", [g.reduce("ReduceMean", probs, [0], { keepdims: false }), epsilon]);
    if (v.valueNorm) {
      const values = g.input(`v${h}`, "float32", [`n${h}`, d]);
      const norm = g.node("ReduceL2", [values], { axes: { ints: [-1] }, keepdims: { int: 0 } });
      score = g.node("Mul", [score, norm]);
    }
    g.output(score, { name: `score${h}`, dataType: "float32", shape: [`n${h}`] });
  }
  return g.build();
}

/**
 * Expected Attention scores of each KV head's keys (spec §5 step 4–5): logit =
 * μ′·k/√d + kᵀΣ′k/(2d) per group member, softmax over the head's keys (f32), mean over the
 * group, then (p + ε)·‖v‖₂. μ and Σ come in already scaled (see {@linkcode ExpectedHead}).
 *
 * @example
 * ```ts
 * const scores = await expectedAttention(heads, {
 *   group: 2, headDim: 128, covariance: true, valueNorm: true, epsilon: 0.02,
 * });
 * ```
 */
export async function expectedAttention(
  heads: readonly ExpectedHead[],
  o: { group: number; headDim: number; covariance: boolean; valueNorm: boolean; epsilon: number },
): Promise<Float32Array[]> {
  const { group: G, headDim: d } = o;
  const H = heads.length;
  const variant = {
    heads: H,
    group: G,
    headDim: d,
    covariance: o.covariance,
    valueNorm: o.valueNorm,
  };
  const run = await session(
    JSON.stringify({ expected: variant }),
    () => buildExpectedGraph(variant),
  );
  const feeds: Record<string, OrtTensor> = { epsilon: tensorF32(Float32Array.of(o.epsilon), [1]) };
  heads.forEach((head, h) => {
    const n = head.keys.length / d;
    feeds[`k${h}`] = tensorF32(head.keys, [n, d]);
    feeds[`mu${h}`] = tensorF32(head.mu, [G, d]);
    if (o.covariance) feeds[`cov${h}`] = tensorF32(head.cov, [G, d, d]);
    if (o.valueNorm) feeds[`v${h}`] = tensorF32(head.values, [n, d]);
  });
  const out = await run.run(feeds);
  return heads.map((_, h) => readF32(out[`score${h}`]));
}

/** Similarities per onnxruntime call of {@linkcode keyRedundancy} (16 MiB of f32). */
const REDUNDANCY_CELLS = 1 << 22;
/** Columns of the first block: small, so rows with a recent near-duplicate stop cheaply. */
const REDUNDANCY_FIRST_BLOCK = 256;

/**
 * Graph: for rows u [R, d] and a block of columns c [C, d] (unit keys), the largest column
 * index j with S > threshold, or −1, where S = u·c_j off the diagonal and 0 on it (R-KV zeroes
 * the diagonal before it compares, so a negative threshold can pick it). Indices travel as
 * f32, exact below 2²⁴.
 */
function buildDuplicateGraph(headDim: number): Uint8Array {
  const d = headDim;
  const g = new GraphBuilder(`last_near_duplicate_d${d}`);
  const rows = g.input("rows", "float32", ["R", d]);
  const cols = g.input("cols", "float32", ["C", d]);
  const rowIndex = g.input("rowIndex", "float32", ["R", 1]);
  const colIndex = g.input("colIndex", "float32", [1, "C"]);
  const threshold = g.input("threshold", "float32", [1]);
  const product = g.node("MatMul", [rows, g.transpose(cols, [1, 0])]); // [R, C]
  const diagonal = g.node("Equal", [rowIndex, colIndex]);
  const similarity = g.node("Where", [diagonal, g.constantF32(0), product]);
  const near = g.node("Greater", [similarity, threshold]);
  const index = g.node("Where", [near, colIndex, g.constantF32(-1)]);
  g.output(g.reduce("ReduceMax", index, [1], { keepdims: false }), {
    name: "match",
    dataType: "float32",
    shape: ["R"],
  });
  return g.build();
}

/**
 * For every row i of the unit keys [n, d], the largest j with S[i][j] > threshold (S the
 * cosine similarities with a zero diagonal), or −1. Column blocks run from the most recent
 * keys backwards, and a row leaves the search at the first block that holds a match, so rows
 * with recent near-duplicates cost a fraction of n·d; with no match at all it is n²·d
 * multiply-adds, in calls of at most `cells` similarities.
 */
async function lastNearDuplicates(
  unit: Float32Array,
  o: { headDim: number; threshold: number; cells: number },
): Promise<Int32Array> {
  const d = o.headDim;
  const n = unit.length / d;
  const run = await session(
    JSON.stringify({ duplicates: d }),
    () => buildDuplicateGraph(d),
  );
  const match = new Int32Array(n).fill(-1);
  const index = Float32Array.from({ length: n }, (_, i) => i);
  const threshold = tensorF32(Float32Array.of(o.threshold), [1]);
  let pending = Int32Array.from({ length: n }, (_, i) => i);
  let end = n;
  let width = Math.max(1, Math.min(REDUNDANCY_FIRST_BLOCK, Math.floor(o.cells / n)));
  while (pending.length > 0 && end > 0) {
    const from = Math.max(0, end - width);
    const R = pending.length;
    const rows = R === n ? unit : new Float32Array(R * d);
    if (R < n) pending.forEach((i, r) => rows.set(unit.subarray(i * d, (i + 1) * d), r * d));
    const out = await run.run({
      rows: tensorF32(rows, [R, d]),
      cols: tensorF32(unit.subarray(from * d, end * d), [end - from, d]),
      rowIndex: tensorF32(Float32Array.from(pending), [R, 1]),
      colIndex: tensorF32(index.subarray(from, end), [1, end - from]),
      threshold,
    });
    const found = readF32(out.match);
    const next: number[] = [];
    pending.forEach((i, r) => {
      if (found[r] >= 0) match[i] = found[r];
      else next.push(i);
    });
    pending = Int32Array.from(next);
    // Doubling blocks, as wide as the cell budget allows for the rows still searching.
    width = Math.max(1, Math.min(2 * (end - from), Math.floor(o.cells / Math.max(1, next.length))));
    end = from;
  }
  return match;
}

/**
 * R-KV's redundancy of every key of each KV head (spec §4.4 steps 2–4; R-KV `cal_similarity`
 * with retain direction "last"): S = the cosine similarities of the head's keys (each key over
 * ‖k‖₂ + ε), diagonal zeroed; in each row i, the entry of the largest column j with S[i][j] >
 * threshold (column 0 when there is none) zeroed too, so the latest near-duplicate of a key is
 * not penalised for it; then the mean of each column over the rows and a softmax over the
 * columns. Returns n values per head (the caller drops the window's).
 *
 * S is never held whole: the column sums are Σ_i S[i][j] = û_j · Σ_i û_i minus the diagonal and
 * the zeroed entries (O(n·d) in f64), and only the search for each row's zeroed entry runs over
 * S, in blocks on onnxruntime (f32 similarities; see `lastNearDuplicates`): at most n²·d
 * multiply-adds and `cells` similarities in memory per call.
 *
 * @example
 * ```ts
 * const [red] = await keyRedundancy([keys], { headDim: 128, threshold: 0.5 });
 * ```
 */
export async function keyRedundancy(
  heads: readonly Float32Array[],
  o: { headDim: number; threshold: number; epsilon?: number; cells?: number },
): Promise<Float64Array[]> {
  const d = o.headDim;
  const epsilon = o.epsilon ?? 1e-8;
  const out: Float64Array[] = [];
  for (const keys of heads) {
    const n = keys.length / d;
    if (n === 0) {
      out.push(new Float64Array(0));
      continue;
    }
    const unit = new Float32Array(n * d);
    const sum = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      let norm = 0;
      for (let a = 0; a < d; a++) norm += keys[i * d + a] ** 2;
      norm = Math.sqrt(norm) + epsilon;
      for (let a = 0; a < d; a++) {
        unit[i * d + a] = keys[i * d + a] / norm;
        sum[a] += unit[i * d + a];
      }
    }
    const match = await lastNearDuplicates(unit, {
      headDim: d,
      threshold: o.threshold,
      cells: o.cells ?? REDUNDANCY_CELLS,
    });
    const dotRows = (i: number, j: number): number => {
      let s = 0;
      for (let a = 0; a < d; a++) s += unit[i * d + a] * unit[j * d + a];
      return s;
    };
    // The zeroed entry of each row, taken off its column (a diagonal entry is 0 already).
    const zeroed = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const j = match[i] >= 0 ? match[i] : 0;
      if (j !== i) zeroed[j] += dotRows(i, j);
    }
    const mean = new Float64Array(n);
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      let column = 0;
      for (let a = 0; a < d; a++) column += unit[j * d + a] * sum[a];
      mean[j] = (column - dotRows(j, j) - zeroed[j]) / n;
      if (mean[j] > max) max = mean[j];
    }
    let total = 0;
    for (let j = 0; j < n; j++) {
      mean[j] = Math.exp(mean[j] - max);
      total += mean[j];
    }
    for (let j = 0; j < n; j++) mean[j] /= total;
    out.push(mean);
  }
  return out;
}
