/**
 * `streamingllm`: keeps the first tokens (attention sinks) and the most recent ones.
 *
 * Paper: Xiao et al., "Efficient Streaming Language Models with Attention Sinks",
 * https://arxiv.org/abs/2309.17453 (kvpress `StreamingLLMPress`; spec §4.4: first 4 + last
 * B − 4 during decoding).
 *
 * Parameters:
 * - `sinks` (default 4): entries at absolute positions below it score +∞ (always kept first).
 *
 * Every other entry scores its position, so the budget goes to the most recent tokens. Scores
 * are ratio-independent. Defaults: per-head budgets; decode as the baselines of spec §4.4.
 *
 * @module
 */

import { z } from "zod";
import { gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  sinks: z.number().int().min(0).default(4).describe("first positions always kept"),
}).strict();

/** Parameters of `streamingllm`. */
export type StreamingLlmParams = z.infer<typeof params>;

/** The `streamingllm` method. */
export const streamingllm: MethodDefinition<StreamingLlmParams> = {
  id: "streamingllm",
  title: "StreamingLLM",
  paper: {
    title: "Efficient Streaming Language Models with Attention Sinks",
    url: "https://arxiv.org/abs/2309.17453",
  },
  summary: "Keeps the first tokens (sinks) and the most recent ones.",
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
          return Float32Array.from(pos, (x) => (x < p.sinks ? Infinity : x));
        }),
    };
  },
};

registerMethod(streamingllm);
