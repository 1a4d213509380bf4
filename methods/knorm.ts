/**
 * `knorm`: keeps the keys with the smallest L2 norm (score = −‖k‖).
 *
 * Paper: Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache
 * Compression", https://arxiv.org/abs/2406.11430 (kvpress `KnormPress`,
 * harness-anchors §1.7).
 *
 * Parameters: none.
 *
 * Scores are the norms of the post-RoPE keys the store holds (`cache.entryNorms`, a reduction
 * on the device for the GPU backend), so they are ratio-independent and need no tap. Defaults: per-head budgets, as kvpress's ScorerPress; decode as the baselines of
 * spec §4.4 (window 8, per-head).
 *
 * @module
 */

import { z } from "zod";
import { gridFromLayers } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({}).strict();

/** Parameters of `knorm` (none). */
export type KnormParams = z.infer<typeof params>;

/** The `knorm` method. */
export const knorm: MethodDefinition<KnormParams> = {
  id: "knorm",
  title: "Key norm",
  paper: {
    title: "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression",
    url: "https://arxiv.org/abs/2406.11430",
  },
  summary: "Keeps the keys with the smallest L2 norm.",
  params,
  signals: ["keys"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(_params, ctx) {
    return {
      // The store reduces its keys to norms where they live (on the GPU: only n floats back).
      score: () =>
        gridFromLayers(ctx.cache, async (l) => {
          const norms = await ctx.cache.entryNorms(l, "keys");
          return norms.map((row) => row.map((x) => -x));
        }),
    };
  },
};

registerMethod(knorm);
