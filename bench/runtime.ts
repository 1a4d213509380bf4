/**
 * Runtime benchmarks of the CPU engine on a random model shaped like Qwen3-0.6B, each judged
 * against a ceiling measured in the same run: prefill's dense FLOP/s against the GEMM peak,
 * decode against the floor of weight bytes ÷ read bandwidth, and decode attention over a long
 * cache against the read bandwidth.
 *
 * @module
 */

import { Bench } from "tinybench";
import { DEFAULT_PREFILL_CHUNK, Model } from "../engine/model.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { CpuKvStore } from "../kernels/kv_store.ts";
import type { ModelConfig } from "../engine/types.ts";
import { seededRandom } from "../kernels/random.ts";
import {
  type Ceiling,
  gemmPeakOf,
  type GemmPeakProbe,
  median,
  type ReadBandwidthProbe,
} from "./ceilings.ts";

/**
 * Latency of `fn` in ms (tinybench: median of `iterations` after `warmup` runs). `between`
 * runs after each timed iteration, outside the timed window.
 */
export async function latencyMs(
  fn: () => Promise<unknown> | unknown,
  options: { iterations: number; warmup?: number; between?: () => Promise<void> },
): Promise<{ medianMs: number; meanMs: number; samples: number }> {
  const bench = new Bench({
    iterations: options.iterations,
    warmupIterations: options.warmup ?? 1,
    time: 0,
    warmupTime: 0,
    throws: true,
  });
  const between = options.between;
  bench.add("task", fn, {
    afterEach: between === undefined ? undefined : async (mode) => {
      if (mode === "run") await between();
    },
  });
  await bench.run();
  const result = bench.tasks[0].result;
  if (result === undefined || !("latency" in result)) {
    throw new Error("tinybench returned no latency");
  }
  return {
    medianMs: result.latency.p50!,
    meanMs: result.latency.mean,
    samples: result.latency.samplesCount,
  };
}

/** FLOPs of the linear layers for T tokens (2 per multiply-add), plus the LM head rows asked. */
export function denseFlops(config: ModelConfig, tokens: number, logitRows: number): number {
  const {
    hiddenSize: D,
    headDim: d,
    numHeads,
    numKvHeads,
    intermediateSize: I,
    numLayers,
    vocabSize,
  } = config;
  const perLayer = D * numHeads * d + 2 * D * numKvHeads * d + numHeads * d * D + 3 * D * I;
  return 2 * tokens * perLayer * numLayers + 2 * logitRows * vocabSize * D;
}

/** Bytes of f32 weights one decode step must read: every linear layer plus the LM head. */
export function decodeWeightBytes(config: ModelConfig): number {
  return (denseFlops(config, 1, 1) / 2) * 4;
}

/** Bytes of f32 keys and values one decode step reads over `context` stored tokens. */
export function decodeKvBytes(config: ModelConfig, context: number): number {
  let entries = 0;
  for (const layer of config.layers) {
    entries += layer.slidingWindow === null ? context : Math.min(context, layer.slidingWindow);
  }
  return 2 * entries * config.numKvHeads * config.headDim * 4;
}

/**
 * FLOPs of attention's two products (q·k and p·v) for a causal prefill of T tokens, 2 per
 * multiply-add, counting only the (query, key) pairs the mask allows: T(T+1)/2 per head, or
 * the window's worth on sliding-window layers. Chunked prefill does no more useful work than
 * this, so it is the count a prefill's model FLOP/s uses.
 */
export function causalAttentionFlops(config: ModelConfig, tokens: number): number {
  const { numHeads, headDim: d } = config;
  let pairs = 0;
  for (const layer of config.layers) {
    const w = layer.slidingWindow;
    for (let t = 0; t < tokens; t++) pairs += w === null ? t + 1 : Math.min(t + 1, w);
  }
  return 2 * 2 * numHeads * d * pairs;
}

/** Prefill and decode figures of one model. */
export interface ModelBench {
  /** Reading the checkpoint, widening to f32 and building the sessions. */
  loadMs: number;
  prefillTokens: number;
  prefillChunk: number;
  prefillMs: number;
  prefillTokensPerS: number;
  prefillDenseGflops: number;
  /** Linear layers plus causal attention products per second (model FLOP/s). */
  prefillModelGflops: number;
  /**
   * The GEMM peak sampled between the prefills (a {@linkcode GemmPeakProbe}): the ceiling of
   * the machine state the prefills ran in (value 0 without a probe).
   */
  prefillGemmPeak: Ceiling;
  /** Decode at the prefill's context: weights plus that many keys and values per step. */
  decodeContext: number;
  decodeMsPerToken: number;
  decodeSamples: number;
  decodeWeightBytes: number;
  /** Keys and values one decode step reads at `decodeContext`. */
  decodeKvBytes: number;
  /** Decode after a short prompt, where the weights are nearly all a step reads. */
  shortDecodeContext: number;
  shortDecodeMsPerToken: number;
  /**
   * Median read bandwidth (GB/s) of a {@linkcode ReadBandwidthProbe} sampled between the
   * decode steps, at 2048 and at the short context: the floors' bandwidth, measured on the
   * same machine state as the steps (NaN without a probe).
   */
  decodeReadGbps: number;
  shortDecodeReadGbps: number;
}

/** Prefill `prefillTokens` random ids (default chunks), then time single-token decode steps. */
export async function benchModel(
  dir: string,
  options: {
    prefillTokens: number;
    decodeSteps: number;
    decodeWarmup?: number;
    threads?: number;
    repeats?: number;
    /** Sampled between decode steps (see {@linkcode ModelBench.decodeReadGbps}). */
    probe?: ReadBandwidthProbe;
    /** Sampled between prefills (see {@linkcode ModelBench.prefillGemmPeak}). */
    gemmProbe?: GemmPeakProbe;
  },
): Promise<ModelBench> {
  const t0 = performance.now();
  const model = await Model.load(dir, { threads: options.threads });
  const loadMs = performance.now() - t0;
  const rand = seededRandom(11);
  const ids = Int32Array.from(
    { length: options.prefillTokens },
    () => Math.floor(rand() * model.config.vocabSize),
  );
  const gemmSamples: { gflops: number; label: string }[][] = [];
  const gemmProbe = options.gemmProbe;
  // Each prefill releases its store, as a sweep does after a sample: the next one's appends
  // reuse that memory (see kernels/kv_pool.ts) instead of faulting in fresh pages.
  const prefill = await latencyMs(async () => {
    const cache = model.createCache();
    await model.prefill(ids, cache);
    cache.release();
  }, {
    iterations: options.repeats ?? 2,
    warmup: 1,
    between: gemmProbe === undefined ? undefined : async () => {
      gemmSamples.push(await gemmProbe.sample());
    },
  });
  const decode = await timeDecode(model, ids, options);
  const shortContext = Math.min(SHORT_DECODE_CONTEXT, options.prefillTokens);
  const shortDecode = await timeDecode(model, ids.subarray(0, shortContext), options);
  const flops = denseFlops(model.config, options.prefillTokens, 1);
  return {
    loadMs,
    prefillTokens: options.prefillTokens,
    prefillChunk: DEFAULT_PREFILL_CHUNK,
    prefillMs: prefill.medianMs,
    prefillTokensPerS: options.prefillTokens / (prefill.medianMs / 1000),
    prefillDenseGflops: flops / (prefill.medianMs * 1e6),
    prefillModelGflops: (flops + causalAttentionFlops(model.config, options.prefillTokens)) /
      (prefill.medianMs * 1e6),
    prefillGemmPeak: gemmPeakOf(gemmSamples),
    decodeContext: options.prefillTokens,
    decodeMsPerToken: decode.medianMs,
    decodeSamples: decode.samples,
    decodeWeightBytes: decodeWeightBytes(model.config),
    decodeKvBytes: decodeKvBytes(model.config, options.prefillTokens),
    shortDecodeContext: shortContext,
    shortDecodeMsPerToken: shortDecode.medianMs,
    decodeReadGbps: decode.readGbps,
    shortDecodeReadGbps: shortDecode.readGbps,
  };
}

/** Context of the short-prompt decode: its keys and values are ~1 % of the weights' bytes. */
export const SHORT_DECODE_CONTEXT = 64;

/**
 * Median ms of greedy single-token decode steps after prefilling `ids`; the cache is restored
 * to the prompt every 32 steps, so the context stays within 32 tokens of the prompt's.
 */
async function timeDecode(
  model: Model,
  ids: Int32Array,
  options: { decodeSteps: number; decodeWarmup?: number; probe?: ReadBandwidthProbe },
): Promise<{ medianMs: number; samples: number; readGbps: number }> {
  const cache = model.createCache();
  let logits = await model.prefill(ids, cache);
  const mark = cache.mark();
  let step = 0;
  const reads: number[] = [];
  const probe = options.probe;
  const timed = await latencyMs(async () => {
    const next = Int32Array.of(argmaxOf(logits));
    logits = await model.forward(next, cache, { logits: "last" });
    if (++step % 32 === 0) cache.restore(mark);
  }, {
    iterations: options.decodeSteps,
    warmup: options.decodeWarmup ?? 2,
    between: probe === undefined ? undefined : async () => {
      reads.push((await probe.sample()).gbps);
    },
  });
  cache.release();
  return { ...timed, readGbps: reads.length > 0 ? median(reads) : NaN };
}

function argmaxOf(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Decode-step attention over a long cache, full and after eviction. */
export interface AttentionBench {
  entriesPerHead: number;
  kvHeads: number;
  headDim: number;
  /** Median over the rounds of each round's median step time. */
  fullMs: number;
  /** K and V bytes read by one full step, over its time (GB/s). */
  fullGbps: number;
  keptRatio: number;
  /** The same for the store after eviction. */
  evictedMs: number;
  /**
   * Median over the rounds of evicted ÷ full, each round timing both stores back to back;
   * proportional scaling gives ≈ keptRatio.
   */
  timeRatio: number;
  /** Each round's evicted ÷ full, in order. */
  roundRatios: number[];
  /**
   * Median read bandwidth (GB/s) of a {@linkcode ReadBandwidthProbe} sampled after each round:
   * the ceiling of the machine state the rounds ran in (NaN without a probe).
   */
  readGbps: number;
}

/**
 * One decode step (one query per head) of one layer over `entries` per KV head, through the
 * store and the engine's ORT attention, and the same step over a copy of the store that kept
 * `keptRatio` of the entries (a different random subset per head). The two are timed in
 * alternating rounds, so both see the same machine state (its speed drifts by up to 2× within
 * minutes here): the time ratio is the median of the rounds' ratios.
 */
export async function benchDecodeAttention(
  options: {
    entries: number;
    kvHeads: number;
    group: number;
    headDim: number;
    keptRatio: number;
    threads?: number;
    /** Rounds of full then evicted timing (default 5). */
    rounds?: number;
    /** Timed steps per store and round (default 8). */
    iterations?: number;
    /** Sampled after each round (see {@linkcode AttentionBench.readGbps}). */
    probe?: ReadBandwidthProbe;
  },
): Promise<AttentionBench> {
  const { entries, kvHeads, group, headDim } = options;
  const full = new CpuKvStore({ numLayers: 1, numKvHeads: kvHeads, group, headDim }, {
    executor: new OrtAttention({ threads: options.threads }),
  });
  const rand = seededRandom(5);
  const chunk = 4096;
  for (let start = 0; start < entries; start += chunk) {
    const n = Math.min(chunk, entries - start);
    const k = Float32Array.from({ length: n * kvHeads * headDim }, () => rand() - 0.5);
    full.append(0, k, k.map((x) => -x), Int32Array.from({ length: n }, (_, i) => start + i));
  }
  const evicted = full.clone();
  evicted.evict(
    0,
    Array.from({ length: kvHeads }, () => {
      const kept: number[] = [];
      for (let j = 0; j < entries; j++) if (rand() < options.keptRatio) kept.push(j);
      return Int32Array.from(kept);
    }),
  );
  const q = Float32Array.from({ length: kvHeads * group * headDim }, () => rand() - 0.5);
  const pos = Int32Array.of(entries);
  const step = (store: CpuKvStore) => () => store.attend(0, q, pos, { scale: headDim ** -0.5 });
  const iterations = options.iterations ?? 8;
  const fullTimes: number[] = [];
  const evictedTimes: number[] = [];
  const roundRatios: number[] = [];
  const reads: number[] = [];
  for (let r = 0; r < (options.rounds ?? 5); r++) {
    const a = await latencyMs(step(full), { iterations, warmup: 2 });
    const b = await latencyMs(step(evicted), { iterations, warmup: 2 });
    fullTimes.push(a.medianMs);
    evictedTimes.push(b.medianMs);
    roundRatios.push(b.medianMs / a.medianMs);
    if (options.probe !== undefined) reads.push((await options.probe.sample()).gbps);
  }
  const fullMs = median(fullTimes);
  const bytes = 2 * entries * kvHeads * headDim * 4;
  return {
    entriesPerHead: entries,
    kvHeads,
    headDim,
    fullMs,
    fullGbps: bytes / (fullMs * 1e6),
    keptRatio: options.keptRatio,
    evictedMs: median(evictedTimes),
    timeRatio: median(roundRatios),
    roundRatios,
    readGbps: reads.length > 0 ? median(reads) : NaN,
  };
}
