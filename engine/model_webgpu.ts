/**
 * The forward pass on WebGPU: the same math as the ONNX graphs of graphs.ts, with weights,
 * activations and the KV cache on the device for the whole pass. One forward is one command
 * buffer and at most one awaited readback (the logits, plus the taps when asked).
 *
 * Per layer, for T tokens (D hidden, d head dim, Hq/Hkv heads, I intermediate):
 *   hidden  = norm_in(x)                                   [T, D] (fused with the residual add)
 *   qkv     = hidden · [Wq; Wk; Wv]ᵀ + b                   [T, (Hq + 2Hkv)·d]
 *   q, kv   = per-head q/k norm + RoPE                     [T, Hq, d], entries [Hkv, T, 2d+1]
 *   cache  ← kv (one copy per head);  attn = attention(q)  [T, Hq·d]
 *   o       = attn · Woᵀ (+ b), Gemma: norm_post_attn(o)
 *   x      += o;  mlpIn = norm_post_attn (Gemma: norm_pre_ff)(x)
 *   act     = act(mlpIn · Wgᵀ) ⊙ (mlpIn · Wuᵀ)             [T, I] (gate and up fused)
 *   mlp     = act · Wdᵀ, Gemma: norm_post_ff(mlp);  x += mlp (fused into the next norm)
 * then logits = norm_final(x) · W_headᵀ, soft-capped when the model says so.
 *
 * @module
 */

import type { HeadStats, StatsRequest } from "../kernels/kv_store.ts";
import {
  type AdapterChoice,
  findAdapter,
  GpuContext,
  type Readback,
} from "../kernels/webgpu/device.ts";
import { GpuKvStore, splitStats } from "../kernels/webgpu/kv_store.ts";
import {
  type GpuMatrix,
  matmul,
  releaseMatrix,
  uploadMatrix,
  type WeightDtype,
} from "../kernels/webgpu/matmul.ts";
import {
  embed,
  entryWords,
  gateActivation,
  MAX_HEAD_DIM,
  qkNormRope,
  rmsNorm,
  softcap,
} from "../kernels/webgpu/ops.ts";
import { type RopeFrequencies, ropeFrequencies, ropeTables } from "./rope.ts";
import type { ModelConfig, ModelWeights } from "./types.ts";
import { stackLinear } from "./weights.ts";

/** Options of the WebGPU backend. */
export interface GpuModelOptions {
  /**
   * Weight storage: "f32" (default; matches the CPU backend to ~1e-5) or "f16" (half the
   * memory, f32 accumulation; needs shader-f16).
   */
  weights?: WeightDtype;
  /** A context to share with other models (default: a new device on the best adapter). */
  context?: GpuContext;
  /** The adapter for a new context (default: the best one). */
  adapter?: AdapterChoice;
  /** Cap on one storage binding in bytes for a new context (tests force splitting with it). */
  maxBinding?: number;
  /** Measure every forward's GPU time with timestamp queries (see lastGpuMs). */
  timed?: boolean;
}

/** The tap of one layer, structurally the same as engine/model.ts's LayerTap. */
export interface GpuLayerTap {
  layer: number;
  positions: Int32Array;
  hidden: Float32Array;
  queries: Float32Array;
  keys: Float32Array;
  values: Float32Array;
  stats: HeadStats[] | null;
}

/** Options of one forward, structurally the same as engine/model.ts's ForwardOptions. */
export interface GpuForwardOptions {
  logits?: "all" | "last" | "none";
  taps?: {
    stats?: StatsRequest | ((layer: number) => StatsRequest | undefined);
    onLayer?: (tap: GpuLayerTap) => void | Promise<void>;
  };
}

interface LayerParams {
  inputNorm: GPUBuffer;
  qkv: GpuMatrix;
  qNorm: GPUBuffer | null;
  kNorm: GPUBuffer | null;
  o: GpuMatrix;
  postAttentionNorm: GPUBuffer;
  preFeedforwardNorm: GPUBuffer | null;
  postFeedforwardNorm: GPUBuffer | null;
  gateUp: GpuMatrix;
  down: GpuMatrix;
  rope: RopeFrequencies;
}

/** Activation buffers for up to `tokens` tokens, allocated once per capacity. */
interface Activations {
  tokens: number;
  ids: GPUBuffer;
  positions: GPUBuffer;
  x: GPUBuffer;
  hidden: GPUBuffer;
  qkv: GPUBuffer;
  q: GPUBuffer;
  stage: GPUBuffer;
  attn: GPUBuffer;
  o: GPUBuffer;
  normed: GPUBuffer;
  mlpIn: GPUBuffer;
  gateUp: GPUBuffer;
  act: GPUBuffer;
  mlp: GPUBuffer;
  rope: Map<RopeFrequencies, { cos: GPUBuffer; sin: GPUBuffer }>;
}

/** Gemma's norms multiply by (1 + w), rounded to f32 as graphs.ts does. */
function normWeight(config: ModelConfig, w: Float32Array): Float32Array {
  return config.normStyle === "gemma" ? w.map((x) => Math.fround(1 + x)) : w;
}

/**
 * A model's weights on one WebGPU device and the forward pass over a {@linkcode GpuKvStore}.
 *
 * @example
 * ```ts
 * const gpu = await GpuForward.create(config, weights, { weights: "f32" });
 * const cache = gpu.createCache();
 * const logits = await gpu.forward(ids, cache, { logits: "last" });
 * ```
 */
export class GpuForward {
  readonly config: ModelConfig;
  readonly gpu: GpuContext;
  readonly weightDtype: WeightDtype;
  /** Device bytes of the weights. */
  readonly weightBytes: number;
  /** GPU time of the last forward in ms, when created with `timed`. */
  lastGpuMs: number | null = null;
  readonly #layers: LayerParams[];
  readonly #embed: GpuMatrix;
  readonly #head: GpuMatrix;
  readonly #finalNorm: GPUBuffer;
  readonly #ownsContext: boolean;
  readonly #timed: boolean;
  #act: Activations | null = null;
  #logits: { rowsPerBlock: number; blocks: GPUBuffer[] } | null = null;

  private constructor(init: {
    config: ModelConfig;
    gpu: GpuContext;
    ownsContext: boolean;
    weightDtype: WeightDtype;
    layers: LayerParams[];
    embed: GpuMatrix;
    head: GpuMatrix;
    finalNorm: GPUBuffer;
    timed: boolean;
  }) {
    this.config = init.config;
    this.gpu = init.gpu;
    this.#ownsContext = init.ownsContext;
    this.weightDtype = init.weightDtype;
    this.#layers = init.layers;
    this.#embed = init.embed;
    this.#head = init.head;
    this.#finalNorm = init.finalNorm;
    this.#timed = init.timed;
    let bytes = init.embed.bytes + init.finalNorm.size;
    if (init.head !== init.embed) bytes += init.head.bytes;
    for (const l of init.layers) {
      bytes += l.qkv.bytes + l.o.bytes + l.gateUp.bytes + l.down.bytes;
      for (const b of [l.inputNorm, l.qNorm, l.kNorm, l.postAttentionNorm]) bytes += b?.size ?? 0;
      for (const b of [l.preFeedforwardNorm, l.postFeedforwardNorm]) bytes += b?.size ?? 0;
    }
    this.weightBytes = bytes;
  }

  /**
   * Upload `weights` (layer arrays are dropped as they are uploaded) and get ready to run.
   * Throws when the context cannot be opened or a shape is beyond the kernels' limits.
   */
  static async create(
    config: ModelConfig,
    weights: ModelWeights,
    options: GpuModelOptions & { onProgress?: (done: number, total: number) => void } = {},
  ): Promise<GpuForward> {
    if (config.headDim > MAX_HEAD_DIM || config.headDim % 2 !== 0) {
      throw new Error(
        `WebGPU backend: head dim ${config.headDim} must be even and at most ${MAX_HEAD_DIM}`,
      );
    }
    const ownsContext = options.context === undefined;
    const gpu = options.context ??
      await GpuContext.open({ adapter: options.adapter, maxBinding: options.maxBinding });
    const dtype = options.weights ?? "f32";
    if (dtype === "f16" && !gpu.f16) {
      throw new Error(
        `WebGPU backend: f16 weights need shader-f16, which ${gpu.adapterName} lacks`,
      );
    }
    const L = config.numLayers;
    const total = L + 1;
    const vector = (w: Float32Array, label: string) => gpu.upload(normWeight(config, w), label);
    // Layers sharing a RoPE spec share one frequency object (and one table per forward).
    const bySpec = new Map<string, RopeFrequencies>();
    const layers: LayerParams[] = [];
    for (let l = 0; l < L; l++) {
      const w = weights.layers[l];
      const key = JSON.stringify(config.layers[l].rope);
      let rope = bySpec.get(key);
      if (rope === undefined) {
        rope = ropeFrequencies(config.headDim, config.layers[l].rope);
        bySpec.set(key, rope);
      }
      const qkv = stackLinear([w.q, w.k, w.v]);
      const gateUp = stackLinear([w.gate, w.up]);
      const p = `layer${l}.`;
      layers.push({
        inputNorm: vector(w.inputNorm, `${p}input_norm`),
        qkv: uploadMatrix(gpu, qkv.weight, {
          rows: qkv.outFeatures,
          cols: config.hiddenSize,
          dtype,
          bias: qkv.bias,
          label: `${p}qkv_proj`,
        }),
        qNorm: w.qNorm ? vector(w.qNorm, `${p}q_norm`) : null,
        kNorm: w.kNorm ? vector(w.kNorm, `${p}k_norm`) : null,
        o: uploadMatrix(gpu, w.o.weight, {
          rows: w.o.outFeatures,
          cols: w.o.inFeatures,
          dtype,
          bias: w.o.bias,
          label: `${p}o_proj`,
        }),
        postAttentionNorm: vector(w.postAttentionNorm, `${p}post_attention_norm`),
        preFeedforwardNorm: w.preFeedforwardNorm
          ? vector(w.preFeedforwardNorm, `${p}pre_feedforward_norm`)
          : null,
        postFeedforwardNorm: w.postFeedforwardNorm
          ? vector(w.postFeedforwardNorm, `${p}post_feedforward_norm`)
          : null,
        gateUp: uploadMatrix(gpu, gateUp.weight, {
          rows: gateUp.outFeatures,
          cols: config.hiddenSize,
          dtype,
          bias: gateUp.bias,
          label: `${p}gate_up_proj`,
        }),
        down: uploadMatrix(gpu, w.down.weight, {
          rows: w.down.outFeatures,
          cols: w.down.inFeatures,
          dtype,
          bias: w.down.bias,
          label: `${p}down_proj`,
        }),
        rope,
      });
      weights.layers[l] = undefined as never;
      options.onProgress?.(l + 1, total);
    }
    const embedTable = uploadMatrix(gpu, weights.embedTokens, {
      rows: config.vocabSize,
      cols: config.hiddenSize,
      dtype,
      label: "embed_tokens",
    });
    const head = weights.lmHead === weights.embedTokens ? embedTable : uploadMatrix(
      gpu,
      weights.lmHead,
      { rows: config.vocabSize, cols: config.hiddenSize, dtype, label: "lm_head" },
    );
    const finalNorm = vector(weights.finalNorm, "final_norm");
    options.onProgress?.(total, total);
    // Surface upload errors now rather than at the first forward.
    await gpu.sync();
    return new GpuForward({
      config,
      gpu,
      ownsContext,
      weightDtype: dtype,
      layers,
      embed: embedTable,
      head,
      finalNorm,
      timed: options.timed === true,
    });
  }

  /** An empty KV store on this device, shaped for the model. */
  createCache(): GpuKvStore {
    const c = this.config;
    return new GpuKvStore(this.gpu, {
      numLayers: c.numLayers,
      numKvHeads: c.numKvHeads,
      group: c.numHeads / c.numKvHeads,
      headDim: c.headDim,
      slidingWindows: c.layers.map((l) => l.slidingWindow),
    });
  }

  /**
   * Run `ids` at `positions` (following what `cache` holds): every layer appends to and
   * attends over the cache on the device. Returns logits [T or 1, vocab] (empty for "none",
   * in which case nothing is awaited unless taps are observed).
   */
  async forward(
    ids: Int32Array,
    positions: Int32Array,
    cache: GpuKvStore,
    options: GpuForwardOptions = {},
  ): Promise<Float32Array> {
    if (cache.gpu !== this.gpu) {
      throw new Error("forward: the cache lives on another device; create it with this model");
    }
    const c = this.config;
    const T = ids.length;
    const D = c.hiddenSize;
    const d = c.headDim;
    const Hq = c.numHeads;
    const Hkv = c.numKvHeads;
    const I = c.intermediateSize;
    const L = c.numLayers;
    const gpu = this.gpu;
    const a = this.#activations(T);
    gpu.write(a.ids, 0, ids);
    gpu.write(a.positions, 0, positions);
    for (const [freqs, tables] of a.rope) {
      const t = ropeTables(freqs, positions);
      gpu.write(tables.cos, 0, t.cos);
      gpu.write(tables.sin, 0, t.sin);
    }
    const mode = options.logits ?? "last";
    const taps = options.taps;
    const rec = gpu.recorder({ timed: this.#timed });
    const tapReads: {
      hidden: Readback;
      q: Readback;
      stage: Readback;
      stats: { read: Readback; stats: ReturnType<GpuKvStore["attendDevice"]> } | null;
    }[] = [];

    embed(rec, this.#embed, a.ids, a.x, { tokens: T, scale: c.embeddingScale });
    rmsNorm(rec, { x: a.x, w: this.#layers[0].inputNorm, y: a.hidden }, {
      rows: T,
      D,
      eps: c.rmsNormEps,
    });
    for (let l = 0; l < L; l++) {
      const w = this.#layers[l];
      matmul(rec, a.hidden, w.qkv, a.qkv, { M: T });
      const rope = a.rope.get(w.rope)!;
      qkNormRope(rec, {
        qkv: a.qkv,
        cos: rope.cos,
        sin: rope.sin,
        qNorm: w.qNorm,
        kNorm: w.kNorm,
        positions: a.positions,
        q: a.q,
        stage: a.stage,
      }, { tokens: T, numHeads: Hq, numKvHeads: Hkv, headDim: d, eps: c.rmsNormEps });
      cache.appendStaged(rec, l, a.stage, positions);
      const stats = typeof taps?.stats === "function" ? taps.stats(l) : taps?.stats;
      const deviceStats = cache.attendDevice(
        rec,
        l,
        { q: a.q, positions: a.positions, out: a.attn, tokens: T },
        { scale: c.attnScale, softcap: c.attnLogitSoftcap, stats },
      );
      if (taps?.onLayer) {
        tapReads.push({
          hidden: rec.read(a.hidden, 0, T * D * 4),
          q: rec.read(a.q, 0, T * Hq * d * 4),
          stage: rec.read(a.stage, 0, Hkv * T * entryWords(d) * 4),
          stats: deviceStats === null ? null : {
            read: rec.read(deviceStats.buffer, 0, deviceStats.buffer.size),
            stats: deviceStats,
          },
        });
      }
      rec.releaseAfter(deviceStats?.buffer ?? null);
      // Nothing after the last attention is observable when no logits are asked for.
      if (l === L - 1 && mode === "none") break;

      matmul(rec, a.attn, w.o, a.o, { M: T });
      let attnOut = a.o;
      let mlpNorm = w.postAttentionNorm;
      if (c.sandwichNorms) {
        rmsNorm(rec, { x: a.o, w: w.postAttentionNorm, y: a.normed }, {
          rows: T,
          D,
          eps: c.rmsNormEps,
        });
        attnOut = a.normed;
        mlpNorm = w.preFeedforwardNorm!;
      }
      rmsNorm(rec, { x: a.x, addend: attnOut, w: mlpNorm, y: a.mlpIn }, {
        rows: T,
        D,
        eps: c.rmsNormEps,
      });
      matmul(rec, a.mlpIn, w.gateUp, a.gateUp, { M: T });
      gateActivation(rec, a.gateUp, a.act, {
        tokens: T,
        intermediate: I,
        activation: c.activation,
      });
      matmul(rec, a.act, w.down, a.mlp, { M: T });
      let mlpOut = a.mlp;
      if (c.sandwichNorms) {
        rmsNorm(rec, { x: a.mlp, w: w.postFeedforwardNorm!, y: a.normed }, {
          rows: T,
          D,
          eps: c.rmsNormEps,
        });
        mlpOut = a.normed;
      }
      // x += mlp, fused with the next layer's input norm (or the final norm of the rows
      // whose logits are asked for).
      const rows = l < L - 1 || mode === "all" ? T : 1;
      rmsNorm(rec, {
        x: a.x,
        addend: mlpOut,
        w: l < L - 1 ? this.#layers[l + 1].inputNorm : this.#finalNorm,
        y: a.hidden,
      }, { rows, D, eps: c.rmsNormEps, offset: (T - rows) * D });
    }

    let logitReads: Readback[] = [];
    let rows = 0;
    if (mode !== "none") {
      rows = mode === "all" ? T : 1;
      logitReads = this.#logitsInto(rec, a.hidden, { from: T - rows, rows });
    }
    if (logitReads.length === 0 && tapReads.length === 0) {
      rec.submit();
      if (this.#timed) this.lastGpuMs = await rec.finish();
      return new Float32Array(0);
    }
    this.lastGpuMs = await rec.finish();

    if (taps?.onLayer) {
      for (let l = 0; l < tapReads.length; l++) {
        const r = tapReads[l];
        const { keys, values } = unstage(new Uint32Array(r.stage.data()), T, Hkv, d);
        await taps.onLayer({
          layer: l,
          positions,
          hidden: new Float32Array(r.hidden.data()),
          queries: new Float32Array(r.q.data()),
          keys,
          values,
          stats: r.stats === null ? null : splitStats(r.stats.stats!, r.stats.read),
        });
      }
    }
    if (mode === "none") return new Float32Array(0);
    const logits = new Float32Array(rows * c.vocabSize);
    let at = 0;
    for (const read of logitReads) {
      const part = new Float32Array(read.data());
      logits.set(part, at);
      at += part.length;
    }
    return logits;
  }

  /** Free the weights, activations and (when this model opened it) the device. */
  dispose(): void {
    const gpu = this.gpu;
    for (const l of this.#layers) {
      for (const m of [l.qkv, l.o, l.gateUp, l.down]) releaseMatrix(gpu, m);
      for (const b of [l.inputNorm, l.qNorm, l.kNorm, l.postAttentionNorm]) gpu.release(b);
      for (const b of [l.preFeedforwardNorm, l.postFeedforwardNorm]) gpu.release(b);
    }
    releaseMatrix(gpu, this.#embed);
    if (this.#head !== this.#embed) releaseMatrix(gpu, this.#head);
    gpu.release(this.#finalNorm);
    this.#releaseActivations();
    if (this.#ownsContext) gpu.destroy();
  }

  /** Final-normed rows [from, from + rows) of `hidden` → logits, in blocks that fit a binding. */
  #logitsInto(
    rec: ReturnType<GpuContext["recorder"]>,
    hidden: GPUBuffer,
    o: { from: number; rows: number },
  ): Readback[] {
    const c = this.config;
    const V = c.vocabSize;
    const perBlock = Math.max(1, Math.floor(this.gpu.maxBinding / (V * 4)));
    if (V * 4 > this.gpu.maxBinding) {
      throw new Error(`WebGPU backend: one row of ${V} logits exceeds the max storage binding`);
    }
    if (this.#logits === null || this.#logits.rowsPerBlock !== perBlock) {
      this.#logits = { rowsPerBlock: perBlock, blocks: [] };
    }
    const reads: Readback[] = [];
    for (let r0 = 0, b = 0; r0 < o.rows; r0 += perBlock, b++) {
      const rows = Math.min(perBlock, o.rows - r0);
      const blocks = this.#logits.blocks;
      if (blocks.length <= b) blocks.push(this.gpu.createBuffer(perBlock * V * 4, `logits ${b}`));
      matmul(rec, hidden, this.#head, blocks[b], {
        M: rows,
        xOffset: (o.from + r0) * c.hiddenSize,
      });
      if (c.finalLogitSoftcap !== null) {
        softcap(rec, blocks[b], { count: rows * V, cap: c.finalLogitSoftcap });
      }
      reads.push(rec.read(blocks[b], 0, rows * V * 4));
    }
    return reads;
  }

  /** Activation buffers for at least `T` tokens (reallocated only when T grows). */
  #activations(T: number): Activations {
    if (this.#act !== null && this.#act.tokens >= T) return this.#act;
    this.#releaseActivations();
    const c = this.config;
    const gpu = this.gpu;
    const tokens = Math.max(T, this.#act?.tokens ?? 0, 1);
    const D = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const qkvDim = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
    const I = c.intermediateSize;
    const sizes: Record<string, number> = {
      x: tokens * D,
      hidden: tokens * D,
      qkv: tokens * qkvDim,
      q: tokens * qDim,
      stage: c.numKvHeads * tokens * entryWords(c.headDim),
      attn: tokens * qDim,
      o: tokens * D,
      normed: tokens * D,
      mlpIn: tokens * D,
      gateUp: tokens * 2 * I,
      act: tokens * I,
      mlp: tokens * D,
    };
    for (const [name, words] of Object.entries(sizes)) {
      if (words * 4 > gpu.maxBinding) {
        throw new Error(
          `WebGPU backend: ${name} for a chunk of ${tokens} tokens needs ${
            words * 4
          } bytes, above the max storage binding of ${gpu.maxBinding}; use a smaller prefill chunk`,
        );
      }
    }
    const buffer = (name: string) => gpu.createBuffer(sizes[name] * 4, name);
    const rope = new Map<RopeFrequencies, { cos: GPUBuffer; sin: GPUBuffer }>();
    for (const l of this.#layers) {
      if (!rope.has(l.rope)) {
        const bytes = tokens * (c.headDim / 2) * 4;
        rope.set(l.rope, {
          cos: gpu.createBuffer(bytes, "cos"),
          sin: gpu.createBuffer(bytes, "sin"),
        });
      }
    }
    this.#act = {
      tokens,
      ids: gpu.createBuffer(tokens * 4, "ids"),
      positions: gpu.createBuffer(tokens * 4, "positions"),
      x: buffer("x"),
      hidden: buffer("hidden"),
      qkv: buffer("qkv"),
      q: buffer("q"),
      stage: buffer("stage"),
      attn: buffer("attn"),
      o: buffer("o"),
      normed: buffer("normed"),
      mlpIn: buffer("mlpIn"),
      gateUp: buffer("gateUp"),
      act: buffer("act"),
      mlp: buffer("mlp"),
      rope,
    };
    return this.#act;
  }

  #releaseActivations(): void {
    const a = this.#act;
    if (a === null) return;
    for (const b of [a.ids, a.positions, a.x, a.hidden, a.qkv, a.q, a.stage, a.attn, a.o]) {
      this.gpu.release(b);
    }
    for (const b of [a.normed, a.mlpIn, a.gateUp, a.act, a.mlp]) this.gpu.release(b);
    for (const t of a.rope.values()) {
      this.gpu.release(t.cos);
      this.gpu.release(t.sin);
    }
    for (const b of this.#logits?.blocks ?? []) this.gpu.release(b);
    this.#logits = null;
    this.#act = null;
  }
}

/** Keys and values [T, Hkv, d] from staged entries [Hkv, T, 2d + 1]. */
function unstage(
  stage: Uint32Array,
  T: number,
  Hkv: number,
  d: number,
): { keys: Float32Array; values: Float32Array } {
  const E = entryWords(d);
  const keys = new Float32Array(T * Hkv * d);
  const values = new Float32Array(T * Hkv * d);
  const keyBits = new Uint32Array(keys.buffer);
  const valueBits = new Uint32Array(values.buffer);
  for (let h = 0; h < Hkv; h++) {
    for (let t = 0; t < T; t++) {
      const src = (h * T + t) * E;
      const dst = (t * Hkv + h) * d;
      keyBits.set(stage.subarray(src, src + d), dst);
      valueBits.set(stage.subarray(src + d, src + 2 * d), dst);
    }
  }
  return { keys, values };
}

/** Which backend `auto` resolves to and why, for the one line the CLI prints. */
export interface BackendChoice {
  backend: "cpu" | "webgpu";
  adapter: AdapterChoice | null;
  /** One line saying what was chosen, e.g. "backend auto: webgpu on NVIDIA H100". */
  message: string;
}

/**
 * Resolve a backend request. `auto` takes WebGPU when a non-fallback adapter exists, else the
 * CPU; `webgpu` takes any adapter (Mesa's llvmpipe included) and returns null when there is
 * none, for the caller to turn into an input error.
 *
 * @example
 * ```ts
 * const choice = await chooseBackend("auto");
 * console.error(choice?.message);
 * ```
 */
export async function chooseBackend(
  request: "auto" | "cpu" | "webgpu",
): Promise<BackendChoice | null> {
  if (request === "cpu") return { backend: "cpu", adapter: null, message: "backend: cpu" };
  const adapter = await findAdapter();
  if (request === "webgpu") {
    if (adapter === null) return null;
    return { backend: "webgpu", adapter, message: `backend: webgpu on ${adapter.description}` };
  }
  if (adapter !== null && !adapter.fallback) {
    return {
      backend: "webgpu",
      adapter,
      message: `backend auto: webgpu on ${adapter.description}`,
    };
  }
  const why = adapter === null
    ? "no WebGPU adapter"
    : `the only WebGPU adapter is a fallback one, ${adapter.description}; --backend webgpu uses it anyway`;
  return { backend: "cpu", adapter: null, message: `backend auto: cpu (${why})` };
}
