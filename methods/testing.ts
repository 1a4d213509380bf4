/**
 * Helpers shared by the method tests: hand-built stores and method contexts, taps fed from
 * real attention calls, and tiny random models in temp dirs.
 *
 * @module
 */

import { DEFAULT_PREFILL_CHUNK, type LayerTap, type Model } from "../engine/model.ts";
import { makeRandomModel, type RandomModelOptions } from "../engine/random_model.ts";
import type { ModelConfig, RopeSpec } from "../engine/types.ts";
import { CpuKvStore, type StatsRequest } from "../kernels/kv_store.ts";
import type { MethodContext, Phase, Scorer } from "./types.ts";

/** A seeded uniform generator in [0, 1). */
export function seeded(seed: number): () => number {
  let x = seed * 2654435761 % 2147483647 || 1;
  return () => (x = (x * 16807) % 2147483647) / 2147483647;
}

/** A config with just what scorers read, for hand-driven tests. */
export function handConfig(o: {
  layers: number;
  kvHeads: number;
  group: number;
  headDim: number;
  rope?: RopeSpec;
  slidingWindows?: (number | null)[];
}): ModelConfig {
  const rope = o.rope ?? { theta: 10000, scaling: null };
  return {
    numLayers: o.layers,
    numKvHeads: o.kvHeads,
    numHeads: o.kvHeads * o.group,
    headDim: o.headDim,
    attnScale: 1 / Math.sqrt(o.headDim),
    attnLogitSoftcap: null,
    layers: Array.from({ length: o.layers }, (_, l) => ({
      slidingWindow: o.slidingWindows?.[l] ?? null,
      rope,
    })),
  } as unknown as ModelConfig;
}

/** A method context around `cache` with no model (scorers that never forward). */
export function handContext(
  cache: CpuKvStore,
  config: ModelConfig,
  o: { phase?: Phase; window?: number; contextStart?: number; contextEnd?: number } = {},
): MethodContext {
  return {
    model: null as unknown as Model,
    config,
    cache,
    contextStart: o.contextStart ?? 0,
    contextEnd: o.contextEnd ?? cache.nextPosition,
    ids: new Int32Array(0),
    idsStart: 0,
    tokenizer: null,
    seed: 0,
    phase: o.phase ?? "prefill",
    window: o.window ?? 0,
    forwardChunk: DEFAULT_PREFILL_CHUNK,
  };
}

/** An empty store shaped like `config`, with the reference attention. */
export function storeFor(config: ModelConfig): CpuKvStore {
  return new CpuKvStore({
    numLayers: config.numLayers,
    numKvHeads: config.numKvHeads,
    group: config.numHeads / config.numKvHeads,
    headDim: config.headDim,
    slidingWindows: config.layers.map((l) => l.slidingWindow),
  });
}

/**
 * One "forward" of one layer by hand: append keys/values at `positions`, attend `queries`
 * with the statistics the scorer asks for, and hand the scorer the tap.
 */
export async function feedLayer(
  scorer: Scorer,
  cache: CpuKvStore,
  o: {
    layer: number;
    positions: Int32Array;
    queries: Float32Array;
    keys: Float32Array;
    values: Float32Array;
    scale: number;
  },
): Promise<void> {
  cache.append(o.layer, o.keys, o.values, o.positions);
  const stats: StatsRequest | undefined = scorer.stats?.(o.layer);
  const { stats: headStats } = await cache.attend(o.layer, o.queries, o.positions, {
    scale: o.scale,
    stats,
  });
  const tap: LayerTap = {
    layer: o.layer,
    positions: o.positions,
    hidden: new Float32Array(0),
    queries: o.queries,
    keys: o.keys,
    values: o.values,
    stats: headStats,
  };
  await scorer.observe?.(tap);
}

/** Positions [from, to) as Int32Array. */
export function positions(from: number, to: number): Int32Array {
  return Int32Array.from({ length: to - from }, (_, i) => from + i);
}

/** `count` uniform values in [−1, 1). */
export function randomArray(rand: () => number, count: number): Float32Array {
  return Float32Array.from({ length: count }, () => rand() * 2 - 1);
}

/** Write a tiny random model into a temp dir, run `fn`, remove the dir. */
export async function withTinyModel(
  options: RandomModelOptions,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_methods_test_" });
  try {
    await makeRandomModel(dir, options);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Plain softmax (f64). */
export function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const e = logits.map((x) => (x === -Infinity ? 0 : Math.exp(x - max)));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Dot product of two rows. */
export function dot(
  a: ArrayLike<number>,
  ao: number,
  b: ArrayLike<number>,
  bo: number,
  d: number,
): number {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[ao + i] * b[bo + i];
  return s;
}
