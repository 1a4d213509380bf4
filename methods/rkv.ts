/**
 * `rkv`: keeps the entries the last queries attend to and that repeat no other key, while
 * decoding (the decoding baseline of Fast KVzip's math runs).
 *
 * Paper: Cai et al., "R-KV: Redundancy-aware KV Cache Compression for Reasoning Models",
 * https://arxiv.org/abs/2505.24133 (R-KV `R1KV` and `cal_similarity`; spec §4.1 and §4.4).
 *
 * Parameters:
 * - `mixLambda` (default 0.1): weight λ of the attention part; the redundancy part weighs
 *   1 − λ (spec §4.1: Fast KVzip's math runs override R-KV's class default 0.07 with 0.1).
 * - `kernel` (default 7): max-pool kernel over neighbouring positions (stride 1, padding
 *   ⌊kernel/2⌋); odd, as R-KV's shapes require.
 * - `threshold` (default 0.5): cosine similarity above which another key is a near-duplicate.
 *
 * Per KV head of n entries, with w the phase's window (8, spec §4.4):
 * - attention a: the last w queries (from the taps, seeded by the prompt's last queries) over
 *   the entries [0, n − w): logits scaled as the model's, max over the GQA group on the logits,
 *   f32 softmax over those entries, mean over the queries, then the max-pool. As in SnapKV's
 *   decoding path, on onnxruntime over keys read with `cache.readEntries`; the store's fused
 *   statistics cannot serve, since they normalise over every entry the query sees, the window
 *   included.
 * - redundancy r: cosine similarities of all n keys, diagonal zeroed, and in each row the
 *   latest near-duplicate's entry zeroed (column 0 when there is none); column means, a
 *   softmax over the n columns, the window's dropped (`keyRedundancy` in score_ort.ts, which
 *   never holds the n × n matrix: at most n²·d multiply-adds per head on onnxruntime in
 *   bounded blocks, fewer when near-duplicates are recent).
 * - score = λ·a − (1 − λ)·r on [0, n − w); the window's entries score +∞. The first 4
 *   positions (R-KV's score set to the maximum) and the window are forced by the decode phase.
 *
 * Phases: decode only. R-KV and the spec define it under a token budget while generating; the
 * prompt is compressed by the first trigger, right after its prefill, which the decode phase
 * runs too. Scores are ratio-independent. Decode defaults: the baselines' of spec §4.4 (window
 * 8, the same budget B for every layer and KV head; trigger every 128 tokens, 4 sinks).
 *
 * @module
 */

import { z } from "zod";
import type { LayerTap } from "../engine/model.ts";
import { gridFromLayers } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { pool1d, QueryWindow } from "./score_kernels.ts";
import { keyRedundancy, windowAttention } from "./score_ort.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  mixLambda: z.number().min(0).max(1).default(0.1).describe(
    "weight of attention; redundancy weighs 1 − mixLambda (spec §4.1: 0.1)",
  ),
  kernel: z.number().int().positive().refine((k) => k % 2 === 1, "expected an odd kernel")
    .default(7).describe("max-pool kernel over neighbouring positions (odd)"),
  threshold: z.number().min(-1).max(1).default(0.5).describe(
    "cosine similarity above which a key is a near-duplicate",
  ),
}).strict();

/** Parameters of `rkv`. */
export type RkvParams = z.infer<typeof params>;

/** The `rkv` method. */
export const rkv: MethodDefinition<RkvParams> = {
  id: "rkv",
  title: "R-KV",
  paper: {
    title: "R-KV: Redundancy-aware KV Cache Compression for Reasoning Models",
    url: "https://arxiv.org/abs/2505.24133",
  },
  summary:
    "Keeps the entries recent queries attend to, minus a penalty for keys that repeat others.",
  params,
  signals: ["queries", "keys"],
  phases: ["decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    const { numLayers, numKvHeads, group, headDim } = ctx.cache.shape;
    const global = (l: number) => ctx.cache.shape.slidingWindows[l] === null;
    const windows = Array.from(
      { length: numLayers },
      () => new QueryWindow(Math.max(1, ctx.window), numKvHeads * group * headDim),
    );
    return {
      observe(tap: LayerTap) {
        if (global(tap.layer)) windows[tap.layer].push(tap.queries, tap.positions);
      },
      score: () =>
        gridFromLayers(ctx.cache, async (l) => {
          const entries = await ctx.cache.readEntries(
            Array.from({ length: numKvHeads }, (_, head) => ({ layer: l, head })),
          );
          const recent = windows[l].rows();
          // The last w entries of a head are its window: not scored, never in the softmax.
          const scored = entries.map(({ length }) => Math.max(0, length - ctx.window));
          const attention = await windowAttention(
            entries.map((e, h) => {
              const rows = Math.min(ctx.window, e.length, recent.positions.length);
              const from = recent.positions.length - rows;
              return {
                window: {
                  queries: recent.queries.subarray(from * numKvHeads * group * headDim),
                  positions: recent.positions.subarray(from),
                },
                sinkKeys: new Float32Array(0),
                sinkPositions: new Int32Array(0),
                keys: e.keys.subarray(0, scored[h] * headDim),
                positions: e.positions.subarray(0, scored[h]),
              };
            }),
            { group, headDim, scale: ctx.config.attnScale, gqa: "max-logits" },
          );
          const redundancy = await keyRedundancy(entries.map((e) => e.keys), {
            headDim,
            threshold: p.threshold,
          });
          return entries.map((e, h) => {
            const out = new Float32Array(e.length).fill(Infinity);
            if (scored[h] === 0) return out;
            const a = pool1d(attention[h], p.kernel, "max");
            for (let i = 0; i < scored[h]; i++) {
              out[i] = p.mixLambda * a[i] - (1 - p.mixLambda) * redundancy[h][i];
            }
            return out;
          });
        }),
    };
  },
};

registerMethod(rkv);
