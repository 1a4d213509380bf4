/**
 * `pyramidkv`: SnapKV scores with per-layer budgets that decrease linearly from the first
 * layer to the last.
 *
 * Paper: Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
 * Funneling", https://arxiv.org/abs/2406.02069 (kvpress `PyramidKVPress`, harness-anchors
 * §1.4; not in the Fast KVzip code, spec §5).
 *
 * Parameters:
 * - `beta` (default 20): steepness; the last layer keeps k/β and the first 2k − k/β of the
 *   average per-head budget k (clamped to the population, then rebalanced, as kvpress does).
 * - `variant` (default "kvpress") and the SnapKV fields: the scores, as in `snapkv`
 *   (kvpress's PyramidKV extends its SnapKV: window 64, avg-pool 5, mean over the group).
 *
 * kvpress computes the budgets over the whole sequence with the window inside; here they are
 * computed over the population of the eviction (the phase's window, if any, is kept outside),
 * so the total matches the ratio exactly up to rounding. Scores are ratio-independent; the
 * budgets are applied by the shared per-head selector through `layerBudgets`.
 *
 * @module
 */

import { z } from "zod";
import { registerMethod } from "./registry.ts";
import { resolveSnap, snapFields, snapScorer } from "./snapkv.ts";
import type { LayerBudgetInfo, MethodDefinition } from "./types.ts";

const params = z.object({
  beta: z.number().min(1).default(20).describe("budget steepness: last layer keeps k/beta"),
  variant: z.enum(["official", "kvpress"]).default("kvpress").describe("SnapKV scoring preset"),
  ...snapFields,
}).strict();

/** Parameters of `pyramidkv`. */
export type PyramidKvParams = z.infer<typeof params>;

/**
 * kvpress's pyramid: per-layer kept counts from max to min in equal steps, mean k, as weights
 * (mean 1) of the per-head budget.
 */
export function pyramidWeights(beta: number, info: LayerBudgetInfo): Float64Array | null {
  const { layers: L, population: m, kept: k } = info;
  if (L <= 1 || k <= 0) return null;
  let min = k / beta;
  let max = 2 * k - min;
  if (max >= m) {
    max = m;
    min = 2 * k - max;
  }
  const step = (max - min) / (L - 1);
  return Float64Array.from({ length: L }, (_, l) => (max - l * step) / k);
}

/** The `pyramidkv` method. */
export const pyramidkv: MethodDefinition<PyramidKvParams> = {
  id: "pyramidkv",
  title: "PyramidKV",
  paper: {
    title: "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling",
    url: "https://arxiv.org/abs/2406.02069",
  },
  summary: "SnapKV scores with per-layer budgets decreasing linearly with depth.",
  params,
  signals: ["attention-stats", "queries", "keys"],
  phases: ["prefill", "chunked-prefill"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  layerBudgets: (p, info) => pyramidWeights(p.beta, info),
  createScorer(p, ctx) {
    const { beta: _beta, variant, ...overrides } = p;
    return snapScorer(resolveSnap(variant, overrides), ctx);
  },
};

registerMethod(pyramidkv);
