/**
 * A loaded model: per-layer ONNX sessions for the dense work, the embedding table for the
 * gather, and the forward pass that moves a chunk of tokens through every layer, appending
 * to and attending over a KV store that the caller owns.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import {
  type AttendResult,
  type AttentionExecutor,
  CpuKvStore,
  type HeadStats,
  type KvStore,
  type StatsRequest,
} from "../kernels/kv_store.ts";
import { GpuKvStore } from "../kernels/webgpu/kv_store.ts";
import {
  createSession,
  type OrtSession,
  type OrtTensor,
  readF32,
  tensorF32,
} from "../kernels/ort.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { KvStoragePool } from "../kernels/kv_pool.ts";
import { buildHeadGraph, buildStepGraph } from "./graphs.ts";
import { openModelDir } from "./model_dir.ts";
import { type RopeFrequencies, ropeFrequencies, ropeTables } from "./rope.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import type { ModelConfig } from "./types.ts";
import { loadWeights } from "./weights.ts";
import { chooseBackend, GpuForward, type GpuModelOptions } from "./model_webgpu.ts";

/**
 * Default prefill chunk in tokens. Chunks give the same logits (tested to 1e-5); at 512 the
 * activations stay in cache and the causal part of attention wastes less than one big chunk
 * (2048 tokens of a Qwen3-0.6B shape: 8.8 s in chunks of 512 vs 19.7 s at once, here).
 */
export const DEFAULT_PREFILL_CHUNK = 512;

/** What the forward pass hands a method for one layer of one chunk. */
export interface LayerTap {
  layer: number;
  /** Absolute positions of the chunk's tokens. */
  positions: Int32Array;
  /** Attention-input hidden state (after the input norm) [T, hidden]. */
  hidden: Float32Array;
  /** Post-RoPE queries [T, heads, headDim]. */
  queries: Float32Array;
  /** Post-RoPE keys [T, kvHeads, headDim]. */
  keys: Float32Array;
  /** Values [T, kvHeads, headDim]. */
  values: Float32Array;
  /** Attention statistics per KV head, when requested, aligned with the store's entries. */
  stats: HeadStats[] | null;
  /**
   * hidden · W [T, P] for the W that {@linkcode ForwardTaps.hiddenProjection} gave for this
   * layer, computed inside the layer's graph (CPU backend; absent otherwise).
   */
  projected?: Float32Array;
}

/** Observers of the forward pass. */
export interface ForwardTaps {
  /** Statistics to compute inside attention, for every layer or per layer. */
  stats?: StatsRequest | ((layer: number) => StatsRequest | undefined);
  /**
   * Called after each layer's attention, before its MLP. On WebGPU every layer's tap comes
   * after the whole pass, in layer order, from the pass's single readback.
   */
  onLayer?: (tap: LayerTap) => void | Promise<void>;
  /**
   * A linear map W [hidden, P] (row-major) of the attention-input hidden state to compute
   * inside layer `layer`'s own graph, with the forward's threads, instead of handing the
   * hidden state to a session of the observer's own; the layer's tap then carries
   * `projected`. The same array for the same layer is reused without a copy. The WebGPU
   * backend ignores it (its taps carry the hidden state only).
   */
  hiddenProjection?: (
    layer: number,
  ) => Float32Array | undefined | Promise<Float32Array | undefined>;
}

/** Options of one forward call. */
export interface ForwardOptions {
  /** Which logits to return: every position, only the last, or none. Default "last". */
  logits?: "all" | "last" | "none";
  taps?: ForwardTaps;
}

/** Options of {@linkcode Model.load}. */
export interface LoadOptions {
  /** Intra-op threads for ORT; default the machine's cores. */
  threads?: number;
  /**
   * Attention arithmetic for caches this model creates; default onnxruntime
   * ({@linkcode OrtAttention}). Tests pass `referenceAttention`, the plain-loop oracle.
   */
  attention?: AttentionExecutor;
  /** Progress while building sessions: (done, total). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Compute backend (default "cpu"). "webgpu" runs the whole forward and the KV store on the
   * device (an InputError when no adapter exists); "auto" takes WebGPU when a non-fallback
   * adapter exists, and then names it in one line on stderr.
   */
  backend?: "auto" | "cpu" | "webgpu";
  /** Options of the WebGPU backend (weight dtype, a shared context, …). */
  gpu?: GpuModelOptions;
}

/**
 * A model ready to run. Create a cache with {@linkcode Model.createCache}, then call
 * {@linkcode Model.forward} on successive chunks.
 *
 * @example
 * ```ts
 * const model = await Model.load("models/tiny");
 * const cache = model.createCache();
 * const logits = await model.forward(Int32Array.of(1, 2, 3), cache, { logits: "all" });
 * ```
 *
 * The type parameter is the store the backend's caches are: CpuKvStore on the CPU,
 * GpuKvStore on WebGPU, the common KvStore when the backend is chosen at run time.
 */
export class Model<S extends KvStore = CpuKvStore> {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly #tokenizer: () => TextTokenizer;
  readonly #embed: Float32Array;
  /** Step l: layer l − 1 after attention, then layer l up to attention (see graphs.ts). */
  readonly #steps: OrtSession[];
  readonly #head: OrtSession | null;
  readonly #rope: RopeFrequencies[];
  readonly #attention: AttentionExecutor;
  /** Storage the CPU stores of this model release, for the next ones (see kernels/kv_pool.ts). */
  readonly #pool = new KvStoragePool();
  /** The WebGPU forward, when that backend runs this model (then steps and head are unused). */
  readonly #gpu: GpuForward | null;
  /** proj_w when no projection is asked for: [hidden, 0] (made on first use: ORT loads lazily). */
  #noProjection: OrtTensor | null = null;
  /** proj_w tensors of the projections taps asked for, per array (built once each). */
  readonly #projections = new WeakMap<Float32Array, OrtTensor>();

  private constructor(init: {
    dir: string;
    config: ModelConfig;
    tokenizer: () => TextTokenizer;
    embed: Float32Array;
    steps: OrtSession[];
    head: OrtSession | null;
    attention: AttentionExecutor;
    gpu?: GpuForward;
  }) {
    this.dir = init.dir;
    this.config = init.config;
    this.#tokenizer = init.tokenizer;
    this.#embed = init.embed;
    this.#steps = init.steps;
    this.#head = init.head;
    this.#attention = init.attention;
    this.#gpu = init.gpu ?? null;
    // Layers sharing a RoPE spec share one frequency object, so tables are built once per chunk.
    const bySpec = new Map<string, RopeFrequencies>();
    this.#rope = this.config.layers.map((l) => {
      const key = JSON.stringify(l.rope);
      let freqs = bySpec.get(key);
      if (freqs === undefined) {
        freqs = ropeFrequencies(this.config.headDim, l.rope);
        bySpec.set(key, freqs);
      }
      return freqs;
    });
  }

  /** Load a Hugging Face model directory and build its sessions (or upload it to the GPU). */
  static load(dir: string, options?: LoadOptions & { backend?: "cpu" }): Promise<Model>;
  static load(
    dir: string,
    options: LoadOptions & { backend: "webgpu" },
  ): Promise<Model<GpuKvStore>>;
  static load(dir: string, options?: LoadOptions): Promise<Model<KvStore>>;
  static async load(dir: string, options: LoadOptions = {}): Promise<Model<KvStore>> {
    const choice = await chooseBackend(options.backend ?? "cpu");
    if (choice === null) {
      throw new InputError(
        "backend webgpu: no WebGPU adapter is available (for a software one on Linux, install mesa-vulkan-drivers)",
      );
    }
    const modelDir = await openModelDir(dir);
    const { config } = modelDir;
    let weights;
    try {
      weights = await loadWeights(modelDir.store, config);
    } finally {
      modelDir.close();
    }
    const threads = options.threads;
    if (choice.backend === "webgpu") {
      const gpu = await GpuForward.create(config, weights, {
        ...options.gpu,
        adapter: options.gpu?.adapter ?? choice.adapter ?? undefined,
        onProgress: options.onProgress,
      });
      // auto says which adapter it took (a CPU fallback keeps stderr as it was).
      if (options.backend === "auto") console.error(choice.message);
      return new Model<KvStore>({
        dir,
        config,
        tokenizer: () => modelDir.requireTokenizer(),
        embed: new Float32Array(0),
        steps: [],
        head: null,
        attention: options.attention ?? new OrtAttention({ threads }),
        gpu,
      });
    }
    const L = config.numLayers;
    const total = L + 2;
    let done = 0;
    const step = () => options.onProgress?.(++done, total);
    const steps: OrtSession[] = [];
    for (let l = 0; l <= L; l++) {
      const layers = {
        before: l > 0 ? weights.layers[l - 1] : null,
        after: l < L ? weights.layers[l] : null,
      };
      steps.push(
        await createSession(buildStepGraph(config, l, layers), { name: `step${l}`, threads }),
      );
      step();
      // The sessions hold their own copies; let the f32 arrays go.
      if (l > 0) weights.layers[l - 1] = undefined as never;
    }
    const head = await createSession(
      buildHeadGraph(config, weights.finalNorm, weights.lmHead),
      { name: "lm_head", threads },
    );
    step();
    return new Model<KvStore>({
      dir,
      config,
      tokenizer: () => modelDir.requireTokenizer(),
      embed: weights.embedTokens,
      steps,
      head,
      attention: options.attention ?? new OrtAttention({ threads }),
    });
  }

  /** The model's tokenizer (a clear error when the directory has no tokenizer.json). */
  tokenizer(): TextTokenizer {
    return this.#tokenizer();
  }

  /** Which backend runs this model. */
  get backend(): "cpu" | "webgpu" {
    return this.#gpu === null ? "cpu" : "webgpu";
  }

  /** The WebGPU forward (device, weight bytes, GPU timings), or null on the CPU backend. */
  get webgpu(): GpuForward | null {
    return this.#gpu;
  }

  /** Free the model's device memory (WebGPU); a no-op on the CPU backend. */
  dispose(): void {
    this.#gpu?.dispose();
  }

  /**
   * An empty KV store shaped for this model (in device memory on WebGPU). On the CPU the
   * model's stores share one {@linkcode KvStoragePool}: call `release()` on a store when done
   * with it, and the next store's appends reuse its memory.
   */
  createCache(): S {
    if (this.#gpu !== null) return this.#gpu.createCache() as KvStore as S;
    const c = this.config;
    return new CpuKvStore({
      numLayers: c.numLayers,
      numKvHeads: c.numKvHeads,
      group: c.numHeads / c.numKvHeads,
      headDim: c.headDim,
      slidingWindows: c.layers.map((l) => l.slidingWindow),
    }, { executor: this.#attention, pool: this.#pool }) as KvStore as S;
  }

  /**
   * Run `ids` at the positions following what `cache` holds: every layer appends its keys and
   * values, then attends over the store. Returns logits [T or 1, vocab] (empty for "none").
   */
  async forward(
    ids: Int32Array,
    cache: S,
    options: ForwardOptions = {},
  ): Promise<Float32Array> {
    const c = this.config;
    const T = ids.length;
    if (T === 0) return new Float32Array(0);
    this.#checkIds(ids, cache.nextPosition);
    const positions = Int32Array.from({ length: T }, (_, i) => cache.nextPosition + i);
    if (this.#gpu !== null) {
      if (!(cache instanceof GpuKvStore)) {
        throw new Error("forward: a WebGPU model needs a cache from its own createCache()");
      }
      const logits = await this.#gpu.forward(ids, positions, cache, options);
      cache.trimWindows();
      return logits;
    }
    const tables = new Map<RopeFrequencies, { cos: Float32Array; sin: Float32Array }>();
    let x = this.#embedTokens(ids);
    let attn: Float32Array | null = null;
    const taps = options.taps;
    const half = c.headDim / 2;
    // Outputs the binding copies out: the taps' extra values only when a tap reads them.
    const observed = taps?.onLayer !== undefined;
    for (let l = 0; l <= c.numLayers; l++) {
      const feeds: Record<string, OrtTensor> = { x: tensorF32(x, [T, c.hiddenSize]) };
      if (attn !== null) feeds.attn = tensorF32(attn, [c.numHeads, T, c.headDim]);
      const fetches = l > 0 ? ["y"] : [];
      if (l < c.numLayers) {
        const freqs = this.#rope[l];
        let table = tables.get(freqs);
        if (table === undefined) {
          table = ropeTables(freqs, positions);
          tables.set(freqs, table);
        }
        feeds.cos = tensorF32(table.cos, [T, half]);
        feeds.sin = tensorF32(table.sin, [T, half]);
        const projection = await taps?.hiddenProjection?.(l);
        feeds.proj_w = projection === undefined
          ? (this.#noProjection ??= tensorF32(new Float32Array(0), [c.hiddenSize, 0]))
          : this.#projectionTensor(projection);
        fetches.push("q_heads", "k_heads", "v_heads");
        if (observed) fetches.push("q", "hidden", "k", "v");
        if (observed && projection !== undefined) fetches.push("proj");
      }
      const out = await this.#steps[l].run(feeds, { fetches });
      if (l > 0) x = readF32(out.y);
      if (l === c.numLayers) break;

      cache.append(l, readF32(out.k_heads), readF32(out.v_heads), positions, "head");
      const stats = typeof taps?.stats === "function" ? taps.stats(l) : taps?.stats;
      // Head-major queries in, head-major output back: the layout the step graphs use.
      const attended: AttendResult = await cache.attend(l, readF32(out.q_heads), positions, {
        scale: c.attnScale,
        softcap: c.attnLogitSoftcap,
        stats,
        layout: "head",
      });
      if (taps?.onLayer) {
        await taps.onLayer({
          layer: l,
          positions,
          hidden: readF32(out.hidden),
          queries: readF32(out.q),
          keys: readF32(out.k),
          values: readF32(out.v),
          stats: attended.stats,
          ...(feeds.proj_w === this.#noProjection ? {} : { projected: readF32(out.proj) }),
        });
      }
      attn = attended.output;
    }
    // Every tap has read this forward's statistics: sliding layers may drop what is now dead.
    cache.trimWindows();
    const mode = options.logits ?? "last";
    if (mode === "none") return new Float32Array(0);
    const rows = mode === "all" ? T : 1;
    const last = x.subarray((T - rows) * c.hiddenSize);
    const out = await this.#head!.run({ x: tensorF32(last, [rows, c.hiddenSize]) });
    return readF32(out.logits);
  }

  /**
   * Prefill `ids` in chunks of `chunkSize` tokens (default {@linkcode DEFAULT_PREFILL_CHUNK});
   * `onChunk` runs after each chunk, e.g. to evict. Returns the last position's logits.
   */
  async prefill(
    ids: Int32Array,
    cache: S,
    options: {
      chunkSize?: number;
      taps?: ForwardTaps;
      onChunk?: (end: number) => void | Promise<void>;
    } = {},
  ): Promise<Float32Array> {
    const chunk = options.chunkSize ?? DEFAULT_PREFILL_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1) {
      throw new InputError(`chunk size: expected a positive integer, got ${options.chunkSize}`);
    }
    // Room for the whole prompt up front, unless the caller may evict between chunks: then
    // the segments stay sized to what they hold, so eviction bounds the peak memory too.
    if (options.onChunk === undefined) cache.reserve(ids.length);
    let logits = new Float32Array(0);
    for (let start = 0; start < ids.length; start += chunk) {
      const end = Math.min(ids.length, start + chunk);
      logits = await this.forward(ids.subarray(start, end), cache, {
        logits: end === ids.length ? "last" : "none",
        taps: options.taps,
      }) as Float32Array<ArrayBuffer>;
      await options.onChunk?.(end);
    }
    return logits;
  }

  /** The proj_w feed of projection `w` [hidden, P] (checked, built once per array). */
  #projectionTensor(w: Float32Array): OrtTensor {
    let tensor = this.#projections.get(w);
    if (tensor === undefined) {
      const D = this.config.hiddenSize;
      if (w.length % D !== 0) {
        throw new Error(
          `hiddenProjection: ${w.length} values is not a [${D}, P] matrix for hidden size ${D}`,
        );
      }
      tensor = tensorF32(w, [D, w.length / D]);
      this.#projections.set(w, tensor);
    }
    return tensor;
  }

  #checkIds(ids: Int32Array, start: number): void {
    const c = this.config;
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= c.vocabSize) {
        throw new InputError(
          `token id ${
            ids[i]
          } at index ${i} is outside the vocabulary [0, ${c.vocabSize}) of ${this.dir}/config.json`,
        );
      }
    }
    if (start + ids.length > c.maxPositionEmbeddings) {
      throw new InputError(
        `context of ${
          start + ids.length
        } tokens exceeds max_position_embeddings ${c.maxPositionEmbeddings} in ${this.dir}/config.json`,
      );
    }
  }

  #embedTokens(ids: Int32Array): Float32Array {
    const D = this.config.hiddenSize;
    const scale = this.config.embeddingScale;
    const x = new Float32Array(ids.length * D);
    for (let t = 0; t < ids.length; t++) {
      const row = this.#embed.subarray(ids[t] * D, (ids[t] + 1) * D);
      if (scale === 1) x.set(row, t * D);
      else for (let i = 0; i < D; i++) x[t * D + i] = row[i] * scale;
    }
    return x;
  }
}
