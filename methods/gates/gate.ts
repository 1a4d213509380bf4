/**
 * The Fast KVzip gate ("low-rank sink attention", spec §1): one small module per gated layer
 * that reads the layer's attention-input hidden state and scores every (token, KV head) in
 * (0, 1), higher = keep.
 *
 * For token t, KV head h, group member g (spec §1.3, bias added once as §1.4 recommends):
 *
 *   q[t,h,g] = RMSNorm_q((W_q x_t + b_q)[h,g])        (d values; flat index (h·G + g)·d + j)
 *   k[t,h]   = RMSNorm_k((W_k x_t)[h])                (d values; flat index h·d + j)
 *   self     = k[t,h]·q[t,h,g] / √d + b[h,g]
 *   sink_j   = k_base[h,j]·q[t,h,g] / √d               (j = 1..S, no bias)
 *   p        = sigmoid(self − logsumexp_j sink_j)
 *   score[t,h] = mean_g p
 *
 * Two implementations: {@linkcode gateForward} in plain loops (the reference, and the
 * per-token math the trainer differentiates), and {@linkcode GateScorer}, one onnxruntime graph
 * per layer, for inference inside prefill and decoding.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import type { ModelConfig } from "../../engine/types.ts";
import { GraphBuilder, tensorDataF32 } from "../../kernels/onnx/graph.ts";
import { createSession, type OrtSession, readF32, tensorF32 } from "../../kernels/ort.ts";
import { seededNormal, seededRandom } from "../../kernels/random.ts";

/** RMSNorm epsilon of the gate's q/k norms (Qwen3RMSNorm default). */
export const GATE_NORM_EPS = 1e-6;
/** Default gate head dimension d ("dim16"). */
export const DEFAULT_GATE_DIM = 16;
/** Default number of learned sink keys per KV head S ("sink16"). */
export const DEFAULT_GATE_SINKS = 16;

/** The dimensions every layer's gate shares. */
export interface GateDims {
  /** Model hidden size D (the input width). */
  hiddenSize: number;
  /** KV heads H. */
  numKvHeads: number;
  /** Query heads per KV head G. */
  group: number;
  /** Gate head dimension d. */
  gateDim: number;
  /** Learned sink keys per KV head S (≥ 1). */
  sinks: number;
}

/** One layer's gate parameters, f32, row-major in the HF layouts of spec §1.2. */
export interface GateLayerWeights {
  /** The model layer this gate reads (absolute index; Gemma3 gates only global layers). */
  layer: number;
  /** q_proj.weight [H·G·d, D]. */
  qWeight: Float32Array;
  /** q_proj.bias [H·G·d]. */
  qBias: Float32Array;
  /** k_proj.weight [H·d, D] (no bias). */
  kWeight: Float32Array;
  /** q_norm.weight [d]. */
  qNorm: Float32Array;
  /** k_norm.weight [d]. */
  kNorm: Float32Array;
  /** Learned sink keys k_base [H, S, d]. */
  kBase: Float32Array;
  /** Self-logit bias b [H, G]. */
  bias: Float32Array;
}

/** One layer's gate: the shared dims and that layer's weights. */
export interface LayerGate {
  dims: GateDims;
  weights: GateLayerWeights;
}

/** The gates of one model: shared dims plus one entry per gated layer, in layer order. */
export interface GateSet {
  dims: GateDims;
  layers: GateLayerWeights[];
}

/** The name, shape and field of every parameter tensor of one layer's gate. */
export interface GateParamSpec {
  /** Name in the official state dict (and, after `layers.{i}.`, in gates.safetensors). */
  name: string;
  field: Exclude<keyof GateLayerWeights, "layer">;
  shape: number[];
}

/**
 * The parameters of one layer's gate, in a fixed order, with their shapes.
 *
 * @example
 * ```ts
 * for (const p of gateParamSpecs(dims)) console.log(p.name, p.shape);
 * ```
 */
export function gateParamSpecs(dims: GateDims): GateParamSpec[] {
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d, sinks: S } = dims;
  return [
    { name: "q_proj.weight", field: "qWeight", shape: [H * G * d, D] },
    { name: "q_proj.bias", field: "qBias", shape: [H * G * d] },
    { name: "k_proj.weight", field: "kWeight", shape: [H * d, D] },
    { name: "q_norm.weight", field: "qNorm", shape: [d] },
    { name: "k_norm.weight", field: "kNorm", shape: [d] },
    { name: "k_base", field: "kBase", shape: [H, S, d] },
    { name: "b", field: "bias", shape: [H, G] },
  ];
}

/**
 * The layers a model's gates read: every global-attention layer (all layers for Llama and
 * Qwen; for Gemma3 only the full-attention ones, spec §1.6).
 *
 * @example
 * ```ts
 * gatedLayers(model.config); // [0, 1, ..., 27] for Qwen3-0.6B
 * ```
 */
export function gatedLayers(config: ModelConfig): number[] {
  const out: number[] = [];
  config.layers.forEach((l, i) => {
    if (l.slidingWindow === null) out.push(i);
  });
  return out;
}

/**
 * Gate dims for a model: D, H and G from its config, d and S from the options (defaults 16).
 *
 * @example
 * ```ts
 * const dims = gateDimsFor(model.config, { gateDim: 16, sinks: 16 });
 * ```
 */
export function gateDimsFor(
  config: ModelConfig,
  options: { gateDim?: number; sinks?: number } = {},
): GateDims {
  const dims = {
    hiddenSize: config.hiddenSize,
    numKvHeads: config.numKvHeads,
    group: config.numHeads / config.numKvHeads,
    gateDim: options.gateDim ?? DEFAULT_GATE_DIM,
    sinks: options.sinks ?? DEFAULT_GATE_SINKS,
  };
  checkDims(dims, "gate dims");
  return dims;
}

/** Fail with an InputError unless every dim is a positive integer. */
export function checkDims(dims: GateDims, where: string): void {
  for (const [key, value] of Object.entries(dims)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new InputError(`${where}: ${key} must be a positive integer, got ${value}`);
    }
  }
}

/**
 * Fresh gates as the official trainer initialises them: q/k projections as PyTorch's default
 * Linear (uniform in ±1/√D, bias too), norm weights 1, sink keys 0, bias 0. Seeded.
 *
 * @example
 * ```ts
 * const gates = initGateSet(dims, gatedLayers(config), { seed: 0 });
 * ```
 */
export function initGateSet(
  dims: GateDims,
  layers: readonly number[],
  options: { seed?: number } = {},
): GateSet {
  checkDims(dims, "gate dims");
  const uniform = seededRandom(options.seed ?? 0);
  const bound = 1 / Math.sqrt(dims.hiddenSize);
  const fill = (n: number) => Float32Array.from({ length: n }, () => (2 * uniform() - 1) * bound);
  const { numKvHeads: H, group: G, gateDim: d, sinks: S, hiddenSize: D } = dims;
  return {
    dims: { ...dims },
    layers: layers.map((layer) => ({
      layer,
      qWeight: fill(H * G * d * D),
      qBias: fill(H * G * d),
      kWeight: fill(H * d * D),
      qNorm: new Float32Array(d).fill(1),
      kNorm: new Float32Array(d).fill(1),
      kBase: new Float32Array(H * S * d),
      bias: new Float32Array(H * G),
    })),
  };
}

/**
 * The projections in plain loops: x [T, D] → a = x W_qᵀ + b_q [T, H·G·d], c = x W_kᵀ [T, H·d].
 *
 * @example
 * ```ts
 * const { a, c } = gateProjections({ dims: gates.dims, weights: gates.layers[0] }, x);
 * ```
 */
export function gateProjections(
  gate: LayerGate,
  x: Float32Array,
): { a: Float32Array; c: Float32Array } {
  const { dims, weights: w } = gate;
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d } = dims;
  const tokens = rowsOf(x, D, "gateProjections");
  const nq = H * G * d;
  const nk = H * d;
  const a = new Float32Array(tokens * nq);
  const c = new Float32Array(tokens * nk);
  for (let t = 0; t < tokens; t++) {
    const xOff = t * D;
    for (let o = 0; o < nq; o++) {
      let s = w.qBias[o];
      const wOff = o * D;
      for (let i = 0; i < D; i++) s += x[xOff + i] * w.qWeight[wOff + i];
      a[t * nq + o] = s;
    }
    for (let o = 0; o < nk; o++) {
      let s = 0;
      const wOff = o * D;
      for (let i = 0; i < D; i++) s += x[xOff + i] * w.kWeight[wOff + i];
      c[t * nk + o] = s;
    }
  }
  return { a, c };
}

/**
 * The per-token part of the gate, from projections a [T, H·G·d] and c [T, H·d] to scores
 * [H, T]. The trainer's gradient (gradient.ts) differentiates exactly this arithmetic.
 *
 * @example
 * ```ts
 * const scores = gateFromProjections(gate, { a, c }); // [H, T]
 * ```
 */
export function gateFromProjections(
  gate: LayerGate,
  projections: { a: Float32Array; c: Float32Array },
): Float32Array {
  const { dims, weights: w } = gate;
  const { a, c } = projections;
  const { numKvHeads: H, group: G, gateDim: d, sinks: S } = dims;
  const tokens = rowsOf(c, H * d, "gateFromProjections");
  const inv = 1 / Math.sqrt(d);
  const scores = new Float32Array(H * tokens);
  const q = new Float64Array(d);
  const k = new Float64Array(d);
  const sink = new Float64Array(S);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < H; h++) {
      rmsNormInto(k, c, (t * H + h) * d, w.kNorm);
      let mean = 0;
      for (let g = 0; g < G; g++) {
        rmsNormInto(q, a, ((t * H + h) * G + g) * d, w.qNorm);
        let self = 0;
        for (let j = 0; j < d; j++) self += k[j] * q[j];
        self = self * inv + w.bias[h * G + g];
        for (let s = 0; s < S; s++) {
          let z = 0;
          const off = (h * S + s) * d;
          for (let j = 0; j < d; j++) z += w.kBase[off + j] * q[j];
          sink[s] = z * inv;
        }
        mean += sigmoid(self - logSumExp(sink));
      }
      scores[h * tokens + t] = mean / G;
    }
  }
  return scores;
}

/**
 * The gate of one layer in plain loops: hidden states x [T, D] → scores [H, T].
 *
 * @example
 * ```ts
 * const scores = gateForward({ dims: gates.dims, weights: gates.layers[0] }, hidden);
 * ```
 */
export function gateForward(gate: LayerGate, x: Float32Array): Float32Array {
  return gateFromProjections(gate, gateProjections(gate, x));
}

/** Rows of a row-major [rows, width] array, failing unless the length divides. */
function rowsOf(values: Float32Array, width: number, what: string): number {
  const rows = values.length / width;
  if (!Number.isInteger(rows)) {
    throw new Error(`${what}: ${values.length} values are not whole rows of ${width}`);
  }
  return rows;
}

/** out = RMSNorm(src[off, off+d)) ⊙ weight, in f64. */
function rmsNormInto(out: Float64Array, src: Float32Array, off: number, weight: Float32Array) {
  const d = out.length;
  let ms = 0;
  for (let j = 0; j < d; j++) ms += src[off + j] * src[off + j];
  const r = 1 / Math.sqrt(ms / d + GATE_NORM_EPS);
  for (let j = 0; j < d; j++) out[j] = src[off + j] * r * weight[j];
}

/** Numerically safe log Σ exp. */
export function logSumExp(values: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i] - max);
  return max + Math.log(sum);
}

/** Logistic sigmoid, safe for large |x|. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * One layer's gate as an ONNX graph with its weights as initializers:
 * input x [T, D], output scores [H, T].
 *
 * The arithmetic is rearranged, exactly, to touch the larger q tensor as little as possible:
 * one Gemm for both projections; the q norm weight and 1/√d are folded into the other side of
 * each dot product (k·(n_q ⊙ w_q)/√d = (k ⊙ w_q/√d)·n_q, likewise for the sink keys), so q is
 * only normalised, never scaled.
 */
export function buildGateGraph(dims: GateDims, w: GateLayerWeights): Uint8Array {
  const { hiddenSize: D } = dims;
  const g = new GraphBuilder(`gate_layer${w.layer}`);
  const x = g.input("x", "float32", ["T", D]);
  const p = `layer${w.layer}.`;
  const { weight, bias } = gateProjection(dims, w);
  const projections = g.gemm(
    x,
    g.initializer(`${p}qk_proj.weight`, tensorDataF32(weight, [weight.length / D, D])),
    g.initializer(`${p}qk_proj.bias`, tensorDataF32(bias, [bias.length])),
  );
  addGateHead(g, dims, w, projections);
  return g.build();
}

/**
 * The gate after its projections, as an ONNX graph: input proj [T, H·G·d + H·d] (x · [W_q;
 * W_k]ᵀ without the bias, as the model's layer graph computes it from
 * {@linkcode gateProjectionT}), output scores [H, T].
 */
export function buildGateHeadGraph(dims: GateDims, w: GateLayerWeights): Uint8Array {
  const { numKvHeads: H, group: G, gateDim: d } = dims;
  const g = new GraphBuilder(`gate_head_layer${w.layer}`);
  const proj = g.input("proj", "float32", ["T", H * G * d + H * d]);
  const { bias } = gateProjection(dims, w);
  const biased = g.node("Add", [
    proj,
    g.initializer(`layer${w.layer}.qk_proj.bias`, tensorDataF32(bias, [bias.length])),
  ]);
  addGateHead(g, dims, w, biased);
  return g.build();
}

/** [W_q; W_k] [H·G·d + H·d, D] and its bias [b_q; 0]. */
function gateProjection(
  dims: GateDims,
  w: GateLayerWeights,
): { weight: Float32Array; bias: Float32Array } {
  const { hiddenSize: D, numKvHeads: H, group: G, gateDim: d } = dims;
  const nq = H * G * d;
  const nk = H * d;
  const weight = new Float32Array((nq + nk) * D);
  weight.set(w.qWeight);
  weight.set(w.kWeight, nq * D);
  const bias = new Float32Array(nq + nk);
  bias.set(w.qBias);
  return { weight, bias };
}

/**
 * The gate's projection matrix transposed, [D, H·G·d + H·d] row-major: the `hiddenProjection`
 * a model's forward computes inside its own layer graph (see buildGateHeadGraph).
 */
export function gateProjectionT(dims: GateDims, w: GateLayerWeights): Float32Array {
  const { hiddenSize: D } = dims;
  const { weight } = gateProjection(dims, w);
  const n = weight.length / D;
  const out = new Float32Array(weight.length);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < D; i++) out[i * n + r] = weight[r * D + i];
  }
  return out;
}

/** Norms, self and sink logits, sigmoid and the GQA mean, from the biased projections. */
function addGateHead(
  g: GraphBuilder,
  dims: GateDims,
  w: GateLayerWeights,
  projections: string,
): void {
  const { numKvHeads: H, group: G, gateDim: d, sinks: S } = dims;
  const nq = H * G * d;
  const nk = H * d;
  const p = `layer${w.layer}.`;
  const inv = 1 / Math.sqrt(d);
  // k's norm weight times q's norm weight and 1/√d; sink keys times q's norm weight and 1/√d,
  // laid out [H, d, S] for the batched MatMul.
  const kScale = Float32Array.from(w.kNorm, (v, j) => v * w.qNorm[j] * inv);
  const kBaseT = new Float32Array(H * d * S);
  for (let h = 0; h < H; h++) {
    for (let s = 0; s < S; s++) {
      for (let j = 0; j < d; j++) {
        kBaseT[(h * d + j) * S + s] = w.kBase[(h * S + s) * d + j] * w.qNorm[j] * inv;
      }
    }
  }
  const [a, c] = g.nodeMulti("Split", [projections, g.constantI64([nq, nk])], 2, {
    axis: { int: 1 },
  });
  const q = g.rmsNorm(g.reshape(a, [-1, H, G, d]), null, GATE_NORM_EPS); // n_q [T,H,G,d]
  const kw = g.initializer(`${p}k_scale`, tensorDataF32(kScale, [d]));
  const k = g.rmsNorm(g.reshape(c, [-1, H, 1, d]), kw, GATE_NORM_EPS); // [T,H,1,d]
  const bias = g.initializer(`${p}b`, tensorDataF32(w.bias, [H, G]));
  const dot = g.reduce("ReduceSum", g.node("Mul", [q, k]), [-1], { keepdims: false }); // [T,H,G]
  const self = g.node("Add", [dot, bias]);
  const kb = g.initializer(`${p}k_base_t`, tensorDataF32(kBaseT, [H, d, S]));
  const qh = g.reshape(g.transpose(q, [1, 0, 2, 3]), [H, -1, d]); // [H, T·G, d]
  const sinks = g.node("MatMul", [qh, kb]); // [H, T·G, S]
  // sigmoid(self − logsumexp_j sink_j) = 1 / (1 + Σ_j exp(sink_j − self)): one vectorised Exp
  // instead of ReduceLogSumExp, which took most of the head's time. An overflowing exp gives
  // 1 / ∞ = 0, the right limit.
  const selfCol = g.reshape(g.transpose(self, [1, 0, 2]), [H, -1, 1]); // [H, T·G, 1]
  const sum = g.reduce("ReduceSum", g.node("Exp", [g.node("Sub", [sinks, selfCol])]), [-1], {
    keepdims: false,
  }); // [H, T·G]
  const prob = g.node("Reciprocal", [g.node("Add", [sum, g.constantF32(1)])]);
  const scores = g.reduce("ReduceMean", g.reshape(prob, [H, -1, G]), [-1], {
    keepdims: false,
  }); // [H, T]
  g.output(scores, { name: "scores", dataType: "float32", shape: [H, "T"] });
}

/**
 * Gate inference through onnxruntime: one session per gated layer.
 *
 * @example
 * ```ts
 * const scorer = await GateScorer.create(gates, { threads: 2 });
 * const scores = await scorer.score(3, hidden); // [H, T]
 * ```
 */
export class GateScorer {
  readonly dims: GateDims;
  readonly #layers: Map<number, GateLayerWeights>;
  readonly #sessions: Map<number, OrtSession>;
  readonly #threads: number | undefined;
  /** Per layer, built on first use: the head session and the transposed projection. */
  readonly #heads = new Map<number, Promise<{ session: OrtSession; projectionT: Float32Array }>>();

  private constructor(
    gates: GateSet,
    sessions: Map<number, OrtSession>,
    threads: number | undefined,
  ) {
    this.dims = { ...gates.dims };
    this.#layers = new Map(gates.layers.map((w) => [w.layer, w]));
    this.#sessions = sessions;
    this.#threads = threads;
  }

  /** Build one session per layer of `gates`. */
  static async create(gates: GateSet, options: { threads?: number } = {}): Promise<GateScorer> {
    const sessions = new Map<number, OrtSession>();
    for (const w of gates.layers) {
      sessions.set(
        w.layer,
        await createSession(buildGateGraph(gates.dims, w), {
          name: `gate_layer${w.layer}`,
          threads: options.threads,
        }),
      );
    }
    return new GateScorer(gates, sessions, options.threads);
  }

  /** Whether model layer `layer` has a gate. */
  has(layer: number): boolean {
    return this.#sessions.has(layer);
  }

  /** The gated model layers, ascending. */
  get layers(): number[] {
    return [...this.#sessions.keys()].sort((a, b) => a - b);
  }

  /** Scores [H, T] of the hidden states x [T, D] of model layer `layer`. */
  async score(layer: number, x: Float32Array): Promise<Float32Array> {
    const session = this.#sessions.get(layer);
    if (session === undefined) throw new Error(`GateScorer: layer ${layer} has no gate`);
    const D = this.dims.hiddenSize;
    const tokens = rowsOf(x, D, "GateScorer.score");
    if (tokens === 0) return new Float32Array(0);
    const out = await session.run({ x: tensorF32(x, [tokens, D]) });
    return readF32(out.scores);
  }

  /**
   * Layer `layer`'s projection [D, P] for a forward's `hiddenProjection`, so the model computes
   * the gate's one large product itself; then {@linkcode scoreProjected} finishes the gate.
   * The same array on every call.
   */
  async projection(layer: number): Promise<Float32Array> {
    return (await this.#head(layer)).projectionT;
  }

  /** Scores [H, T] from hidden · projection(layer) [T, P], equal to score() on the hidden. */
  async scoreProjected(layer: number, projected: Float32Array): Promise<Float32Array> {
    const { session, projectionT } = await this.#head(layer);
    const P = projectionT.length / this.dims.hiddenSize;
    const tokens = rowsOf(projected, P, "GateScorer.scoreProjected");
    if (tokens === 0) return new Float32Array(0);
    const out = await session.run({ proj: tensorF32(projected, [tokens, P]) });
    return readF32(out.scores);
  }

  #head(layer: number): Promise<{ session: OrtSession; projectionT: Float32Array }> {
    let head = this.#heads.get(layer);
    if (head === undefined) {
      const w = this.#layers.get(layer);
      if (w === undefined) throw new Error(`GateScorer: layer ${layer} has no gate`);
      head = createSession(buildGateHeadGraph(this.dims, w), {
        name: `gate_head_layer${layer}`,
        threads: this.#threads,
      }).then((session) => ({ session, projectionT: gateProjectionT(this.dims, w) }));
      this.#heads.set(layer, head);
    }
    return head;
  }

  /** Release every session. */
  async release(): Promise<void> {
    for (const s of this.#sessions.values()) await s.release();
    this.#sessions.clear();
    for (const head of this.#heads.values()) await (await head).session.release();
    this.#heads.clear();
  }
}

/**
 * Random gates with every parameter non-trivial (norm weights ≠ 1, sinks and bias ≠ 0).
 */
export function randomGates(dims: GateDims, options: { layers: number[]; seed: number }): GateSet {
  const { layers, seed } = options;
  const normal = seededNormal(seed);
  const gates = initGateSet(dims, layers, { seed });
  for (const w of gates.layers) {
    for (let i = 0; i < w.qNorm.length; i++) w.qNorm[i] = 1 + 0.3 * normal();
    for (let i = 0; i < w.kNorm.length; i++) w.kNorm[i] = 1 + 0.3 * normal();
    for (let i = 0; i < w.kBase.length; i++) w.kBase[i] = 0.8 * normal();
    for (let i = 0; i < w.bias.length; i++) w.bias[i] = 0.7 * normal();
    for (let i = 0; i < w.qBias.length; i++) w.qBias[i] = 0.2 * normal();
  }
  return gates;
}
