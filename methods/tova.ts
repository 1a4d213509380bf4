/**
 * `tova`: keeps the entries the last query attends to most (token omission via attention).
 *
 * Paper: Oren et al., "Transformers are Multi-State RNNs", https://arxiv.org/abs/2401.06104
 * (kvpress `TOVAPress`, harness-anchors §1.7).
 *
 * Parameters:
 * - `heads` (default "layer"): "layer" averages the last row over every query head of the
 *   layer, so all heads of a layer rank alike (the paper); "kv-head" averages only over the
 *   query heads of each GQA group.
 *
 * The last row comes from the store's fused `lastRow` statistic of each forward (mean over the
 * group). The last token itself scores the layer's maximum, as kvpress pads it. Scores are
 * ratio-independent. Defaults: per-head budgets; decode as the baselines of spec §4.4.
 *
 * @module
 */

import { z } from "zod";
import type { LayerTap } from "../engine/model.ts";
import { alignValues, EntryScores, gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { BASELINE_DECODE, type MethodDefinition } from "./types.ts";

const params = z.object({
  heads: z.enum(["layer", "kv-head"]).default("layer").describe(
    "average the last row over the layer's heads or over each GQA group",
  ),
}).strict();

/** Parameters of `tova`. */
export type TovaParams = z.infer<typeof params>;

/** The `tova` method. */
export const tova: MethodDefinition<TovaParams> = {
  id: "tova",
  title: "TOVA",
  paper: { title: "Transformers are Multi-State RNNs", url: "https://arxiv.org/abs/2401.06104" },
  summary: "Keeps the entries the last query attends to most.",
  params,
  signals: ["attention-stats"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    const { numLayers, numKvHeads } = ctx.cache.shape;
    // The latest forward's last row, per layer and head, by position: it covers every entry
    // of a global layer, so each forward overwrites what the previous one left.
    const rows = new EntryScores(numLayers, numKvHeads);
    const lastPosition = new Array<number>(numLayers).fill(-1);
    return {
      stats: (layer) =>
        ctx.cache.shape.slidingWindows[layer] === null ? { lastRow: true } : undefined,
      observe(tap: LayerTap) {
        if (tap.stats === null) return;
        for (let h = 0; h < numKvHeads; h++) {
          rows.put(tap.layer, h, ctx.cache.positions(tap.layer, h), tap.stats[h].lastRow!);
        }
        lastPosition[tap.layer] = tap.positions[tap.positions.length - 1];
      },
      score() {
        const grid = rows.aligned(ctx.cache);
        return gridFrom(ctx.cache, (l, h) => {
          let s = grid[l][h];
          if (p.heads === "layer") {
            const pos = ctx.cache.positions(l, h);
            const sum = new Float64Array(pos.length);
            const count = new Float64Array(pos.length);
            for (let g = 0; g < numKvHeads; g++) {
              // Heads may hold different entries after non-uniform eviction.
              const other = alignValues(pos, ctx.cache.positions(l, g), grid[l][g]);
              for (let i = 0; i < pos.length; i++) {
                if (Number.isNaN(other[i])) continue;
                sum[i] += other[i];
                count[i]++;
              }
            }
            s = Float32Array.from(sum, (x, i) => (count[i] > 0 ? x / count[i] : NaN));
          }
          const pos = ctx.cache.positions(l, h);
          let max = -Infinity;
          for (let i = 0; i < s.length; i++) {
            if (pos[i] !== lastPosition[l] && s[i] > max) max = s[i];
          }
          for (let i = 0; i < s.length; i++) if (pos[i] === lastPosition[l]) s[i] = max;
          return s;
        });
      },
    };
  },
};

registerMethod(tova);
