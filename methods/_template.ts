/**
 * `keydiff`: keeps the keys least similar to the average key (a template to copy: a complete,
 * working method that mod.ts does not import).
 *
 * Paper: Park et al., "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM
 * Inference in Resource-Constrained Environments", https://arxiv.org/abs/2504.15364 (kvpress
 * `KeyDiffPress`, harness-anchors §1.7).
 *
 * Parameters:
 * - `epsilon` (default 1e-8): added to each key norm before normalising.
 *
 * score = −cos(k, mean of the head's normalised keys), read from the keys the store holds, so
 * it needs no tap and is ratio-independent. Defaults: per-head budgets (kvpress ScorerPress);
 * decode as the baselines of spec §4.4 (window 8, per-head).
 *
 * To make your own: copy this file to methods/<your_id>.ts, change the id, the doc comment,
 * the parameters and `createScorer`, and add `import "./<your_id>.ts";` to methods/mod.ts.
 * The conformance suite (methods/conformance_test.ts) then runs it. See docs/methods.md.
 *
 * @module
 */

import { z } from "zod";
import { gridFromLayers } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  epsilon: z.number().min(0).default(1e-8).describe("added to key norms before normalising"),
}).strict();

/** Parameters of `keydiff`. */
export type KeyDiffParams = z.infer<typeof params>;

/** The `keydiff` method. */
export const keydiff: MethodDefinition<KeyDiffParams> = {
  id: "keydiff",
  title: "KeyDiff",
  paper: {
    title:
      "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in Resource-Constrained Environments",
    url: "https://arxiv.org/abs/2504.15364",
  },
  summary: "Keeps the keys least similar to the average key.",
  version: 1, // bump when scoring changes; part of every cell id
  params,
  signals: ["keys"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    const d = ctx.config.headDim;
    const H = ctx.config.numKvHeads;
    return {
      // Raw keys come through readEntries: views on the CPU, one read-back on the GPU.
      score: () =>
        gridFromLayers(ctx.cache, async (layer) => {
          const heads = await ctx.cache.readEntries(
            Array.from({ length: H }, (_, head) => ({ layer, head })),
          );
          return heads.map(({ keys, length }) => {
            // Normalise every key, then average the unit vectors.
            const unit = new Float64Array(length * d);
            const mean = new Float64Array(d);
            for (let i = 0; i < length; i++) {
              let norm = 0;
              for (let j = 0; j < d; j++) norm += keys[i * d + j] ** 2;
              norm = Math.sqrt(norm) + p.epsilon;
              for (let j = 0; j < d; j++) {
                unit[i * d + j] = keys[i * d + j] / norm;
                mean[j] += unit[i * d + j] / length;
              }
            }
            let meanNorm = 0;
            for (let j = 0; j < d; j++) meanNorm += mean[j] ** 2;
            meanNorm = Math.sqrt(meanNorm) + p.epsilon;
            // −cos(k, mean): the more a key differs from the average, the higher it scores.
            const scores = new Float32Array(length);
            for (let i = 0; i < length; i++) {
              let cos = 0;
              for (let j = 0; j < d; j++) cos += unit[i * d + j] * mean[j];
              scores[i] = -cos / meanNorm;
            }
            return scores;
          });
        }),
    };
  },
};

registerMethod(keydiff);
