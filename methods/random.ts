/**
 * `random`: keeps entries at random (a seeded uniform score per entry).
 *
 * Paper: none (kvpress `RandomPress` baseline, harness-anchors §1.7).
 *
 * Parameters:
 * - `seed` (default 0): mixed with the sample's seed; the score of an entry is a hash of
 *   (sample seed, seed, layer, head, position), so it is stable across eviction, phases and
 *   runs.
 *
 * Defaults: per-head budgets; decode as the baselines of spec §4.4 (window 8, per-head).
 *
 * @module
 */

import { z } from "zod";
import { gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { hashUniform } from "./score_kernels.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  seed: z.number().int().default(0).describe("mixed with the sample seed"),
}).strict();

/** Parameters of `random`. */
export type RandomParams = z.infer<typeof params>;

/** The `random` method. */
export const random: MethodDefinition<RandomParams> = {
  id: "random",
  title: "Random",
  paper: null,
  summary: "Keeps entries uniformly at random (seeded).",
  params,
  signals: [],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    return {
      score: () =>
        gridFrom(ctx.cache, (l, h) => {
          const pos = ctx.cache.positions(l, h);
          return Float32Array.from(pos, (x) => hashUniform(ctx.seed, p.seed, l, h, x));
        }),
    };
  },
};

registerMethod(random);
