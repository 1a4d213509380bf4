/**
 * Timing helpers for `deno task bench`: what eviction costs on top of a full-cache prefill.
 * Each takes a loaded model and token ids, uses the same prefill chunking for every run it
 * compares, and returns plain numbers (milliseconds and ratios) for the bench to print or
 * store. They run each measurement once per `repeats` and keep the fastest, so they stay cheap
 * to call; warm-up is the caller's business (the first forward builds ORT sessions).
 *
 * @module
 */

import type { Model } from "../engine/model.ts";
import { prefillWithEviction } from "./phases.ts";
import { getMethod } from "./registry.ts";
import { evictWithScores } from "./select.ts";
import { hashUniform } from "./score_kernels.ts";
import { gridFrom } from "./entry_scores.ts";
import type { PolicySpec } from "./types.ts";

/** Options shared by the helpers. */
export interface BenchOptions {
  /** Prefill chunk in tokens (default the model's). */
  chunkSize?: number;
  /** Runs per measurement; the fastest is kept. Default 1. */
  repeats?: number;
  /** Kept ratio for the evicting runs. Default 0.3 (spec §9's headline). */
  keptRatio?: number;
}

/** One method's cost relative to a full-cache prefill of the same ids. */
export interface ScoringCost {
  method: string;
  /** Prefill with the method's taps (fused statistics, query buffers) and no eviction yet. */
  prefillMs: number;
  /** The method's scoring after the prefill (KVzip: its reconstruction passes). */
  scoreMs: number;
  /** Selection and compaction of the one eviction. */
  selectMs: number;
  compactMs: number;
  /** The plain prefill: no taps, no statistics. */
  fullPrefillMs: number;
  /** (prefill + score + select + compact) / full prefill. */
  costRatio: number;
}

async function fastest<T extends { total: number }>(
  repeats: number,
  run: () => Promise<T>,
): Promise<T> {
  let best: T | null = null;
  for (let i = 0; i < Math.max(1, repeats); i++) {
    const r = await run();
    if (best === null || r.total < best.total) best = r;
  }
  return best!;
}

/** Wall time of a full-cache prefill of `ids` (no taps). */
export async function timeFullPrefill(
  model: Model,
  ids: Int32Array,
  options: BenchOptions = {},
): Promise<number> {
  const r = await fastest(options.repeats ?? 1, async () => {
    const t0 = performance.now();
    await model.prefill(ids, model.createCache(), { chunkSize: options.chunkSize });
    return { total: performance.now() - t0 };
  });
  return r.total;
}

/**
 * Cost of each method's scoring against the full-cache prefill (SnapKV's and H2O's fused
 * statistics, KVzip's reconstruction), one-shot prefill at `keptRatio`.
 *
 * @example
 * ```ts
 * const rows = await timeScoringCost(model, ids, ["snapkv", "h2o", "kvzip"]);
 * ```
 */
export async function timeScoringCost(
  model: Model,
  ids: Int32Array,
  methods: readonly string[],
  options: BenchOptions = {},
): Promise<ScoringCost[]> {
  const fullPrefillMs = await timeFullPrefill(model, ids, options);
  const out: ScoringCost[] = [];
  for (const id of methods) {
    const method = getMethod(id);
    const best = await fastest(options.repeats ?? 1, async () => {
      const r = await prefillWithEviction(model, { prefix: new Int32Array(0), context: ids }, {
        method,
        keptRatio: method.phases.length === 0 ? 1 : options.keptRatio ?? 0.3,
        chunkSize: options.chunkSize,
      });
      const total = r.prefillMs + r.scoreMs + r.report.selectMs + r.report.compactMs;
      return { total, r };
    });
    out.push({
      method: id,
      prefillMs: best.r.prefillMs,
      scoreMs: best.r.scoreMs,
      selectMs: best.r.report.selectMs,
      compactMs: best.r.report.compactMs,
      fullPrefillMs,
      costRatio: best.total / fullPrefillMs,
    });
  }
  return out;
}

/** KVzip's cost over a plain prefill: (prefill + reconstruction scoring) / prefill. */
export async function timeKvzipCostRatio(
  model: Model,
  ids: Int32Array,
  options: BenchOptions = {},
): Promise<{ prefillMs: number; scoreMs: number; fullPrefillMs: number; costRatio: number }> {
  const [row] = await timeScoringCost(model, ids, ["kvzip"], options);
  return {
    prefillMs: row.prefillMs,
    scoreMs: row.scoreMs,
    fullPrefillMs: row.fullPrefillMs,
    costRatio: (row.prefillMs + row.scoreMs) / row.fullPrefillMs,
  };
}

/** Selection and compaction time of one eviction, per policy. */
export interface SelectionCost {
  policy: PolicySpec;
  entriesBefore: number;
  entriesAfter: number;
  selectMs: number;
  compactMs: number;
}

/**
 * Time the shared selector and the store's compaction on a prefilled cache with seeded random
 * scores (tie-free), once per policy, each on its own clone.
 */
export async function timeSelection(
  model: Model,
  ids: Int32Array,
  options: BenchOptions & { policies?: readonly PolicySpec[] } = {},
): Promise<SelectionCost[]> {
  const cache = model.createCache();
  await model.prefill(ids, cache, { chunkSize: options.chunkSize });
  const scores = gridFrom(
    cache,
    (l, h) => Float32Array.from(cache.segment(l, h).positions, (p) => hashUniform(7, l, h, p)),
  );
  const policies = options.policies ?? [
    { policy: "per-head" },
    { policy: "per-layer", safeguard: 0.2 },
    { policy: "global" },
  ];
  let entriesBefore = 0;
  for (let l = 0; l < cache.shape.numLayers; l++) {
    for (const n of cache.lengths(l)) entriesBefore += n;
  }
  const out: SelectionCost[] = [];
  for (const policy of policies) {
    const best = await fastest(options.repeats ?? 1, () => {
      const clone = cache.clone();
      const report = evictWithScores(clone, scores, {
        budget: { ratio: options.keptRatio ?? 0.3 },
        policy,
        range: { start: 0, end: ids.length },
        context: { start: 0, end: ids.length },
        asked: { keptRatio: options.keptRatio ?? 0.3 },
      });
      let entriesAfter = 0;
      for (const row of report.entries) for (const n of row) entriesAfter += n;
      return Promise.resolve({ total: report.selectMs + report.compactMs, report, entriesAfter });
    });
    out.push({
      policy,
      entriesBefore,
      entriesAfter: best.entriesAfter,
      selectMs: best.report.selectMs,
      compactMs: best.report.compactMs,
    });
  }
  return out;
}
