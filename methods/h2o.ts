/**
 * `h2o`: keeps the heavy hitters (most accumulated attention) plus the most recent tokens.
 *
 * Paper: Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large
 * Language Models", https://arxiv.org/abs/2306.14048 (harness-anchors §3.7: heavy + recent
 * budgets; kvpress `ObservedAttentionPress` for the normalised variant).
 *
 * Parameters:
 * - `recentShare` (default 0.5): the fraction of each head's kept entries reserved for the most
 *   recent tokens (H2O's equal heavy and recent budgets); the rest go to the heavy hitters.
 * - `normalize` (default false): divide each entry's accumulated attention by the number of
 *   queries that could see it (kvpress ObservedAttention) instead of the plain sum (H2O).
 *
 * The accumulated attention is the sum over every query of every forward of the phase (all
 * prefill chunks and, in decode, every step) of the store's fused `columnSum` statistic (mean
 * over the GQA group). Because the recent share is a share of the budget, the scores depend
 * on the ratio: each ratio of a sweep re-scores from the same observations. The spec's decode
 * H2O (§4.4) is non-functional in the official code; this is the classic accumulated H2O.
 * Defaults: per-head budgets; decode as the baselines of spec §4.4.
 *
 * @module
 */

import { z } from "zod";
import type { LayerTap } from "../engine/model.ts";
import { EntryScores, gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { positionRange } from "./score_kernels.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  recentShare: z.number().min(0).max(1).default(0.5).describe(
    "fraction of the kept entries reserved for the most recent tokens",
  ),
  normalize: z.boolean().default(false).describe(
    "divide by the number of queries that saw each entry (kvpress ObservedAttention)",
  ),
}).strict();

/** Parameters of `h2o`. */
export type H2oParams = z.infer<typeof params>;

/** The `h2o` method. */
export const h2o: MethodDefinition<H2oParams> = {
  id: "h2o",
  title: "H2O",
  paper: {
    title: "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models",
    url: "https://arxiv.org/abs/2306.14048",
  },
  summary: "Keeps the entries with the most accumulated attention, plus the most recent ones.",
  params,
  signals: ["attention-stats"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: false,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    const { numLayers, numKvHeads } = ctx.cache.shape;
    const sums = new EntryScores(numLayers, numKvHeads);
    // Forwards continue one another, so the queries seen form one run of positions.
    let firstQuery = Infinity;
    let endQuery = -Infinity;
    return {
      stats: (layer) =>
        ctx.cache.shape.slidingWindows[layer] === null
          ? { columnSum: true, gqa: "mean" }
          : undefined,
      observe(tap: LayerTap) {
        if (tap.layer === 0) {
          firstQuery = Math.min(firstQuery, tap.positions[0]);
          endQuery = Math.max(endQuery, tap.positions[tap.positions.length - 1] + 1);
        }
        if (tap.stats === null) return;
        for (let h = 0; h < numKvHeads; h++) {
          sums.add(
            tap.layer,
            h,
            ctx.cache.positions(tap.layer, h),
            tap.stats[h].columnSum!,
          );
        }
      },
      score(request) {
        const grid = sums.aligned(ctx.cache);
        const recent = Math.floor(p.recentShare * request.keptPerHead);
        return gridFrom(ctx.cache, (l, h) => {
          const positions = ctx.cache.positions(l, h);
          const s = grid[l][h];
          if (p.normalize) {
            for (let i = 0; i < s.length; i++) {
              s[i] /= Math.max(1, endQuery - Math.max(firstQuery, positions[i]));
            }
          }
          const [lo, hi] = positionRange(positions, request.range.start, request.range.end);
          for (let i = Math.max(lo, hi - recent); i < hi; i++) s[i] = Infinity;
          return s;
        });
      },
    };
  },
};

registerMethod(h2o);
