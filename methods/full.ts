/**
 * `full`: keeps every entry; the reference every other method is measured against.
 *
 * Paper: none (the uncompressed cache).
 *
 * Parameters: none.
 *
 * It acts in no phase, so the phases never score or evict for it, whatever the budget; every
 * report says kept ratio 1. Spec §6.5: ratio 1.0 uses the full-cache answers.
 *
 * @module
 */

import { z } from "zod";
import { gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import type { MethodDefinition } from "./types.ts";

const params = z.object({}).strict();

/** Parameters of `full` (none). */
export type FullParams = z.infer<typeof params>;

/** The `full` method. */
export const full: MethodDefinition<FullParams> = {
  id: "full",
  title: "Full cache",
  paper: null,
  summary: "Keeps every entry (no eviction).",
  params,
  signals: [],
  phases: [],
  ratioIndependent: true,
  policy: { policy: "global" },
  createScorer(_params, ctx) {
    return {
      score: () =>
        gridFrom(ctx.cache, (l, h) => new Float32Array(ctx.cache.positions(l, h).length).fill(1)),
    };
  },
};

registerMethod(full);
