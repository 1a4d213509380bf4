/**
 * `knorm`: keeps the keys with the smallest L2 norm (score = −‖k‖).
 *
 * Paper: Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache
 * Compression", https://arxiv.org/abs/2406.11430 (kvpress `KnormPress`,
 * harness-anchors §1.7).
 *
 * Parameters: none.
 *
 * Scores are read from the post-RoPE keys the store holds, so they are ratio-independent and
 * need no tap. Defaults: per-head budgets, as kvpress's ScorerPress; decode as the baselines of
 * spec §4.4 (window 8, per-head).
 *
 * @module
 */

import { z } from "zod";
import { gridFrom } from "./entry_scores.ts";
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
    const d = ctx.config.headDim;
    return {
      score: () =>
        gridFrom(ctx.cache, (l, h) => {
          const seg = ctx.cache.segment(l, h);
          const out = new Float32Array(seg.length);
          for (let i = 0; i < seg.length; i++) {
            let s = 0;
            for (let j = 0; j < d; j++) s += seg.keys[i * d + j] ** 2;
            out[i] = -Math.sqrt(s);
          }
          return out;
        }),
    };
  },
};

registerMethod(knorm);
