/**
 * `snapkv`: keeps the entries a window of the most recent queries attends to, smoothed by
 * pooling over neighbouring positions.
 *
 * Paper: Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation",
 * https://arxiv.org/abs/2404.14469.
 *
 * Parameters (`variant` picks a preset; each other parameter overrides it):
 * - `variant` (default "official"): "official" is the Fast KVzip prefill baseline (spec §5);
 *   "kvpress" is kvpress's `SnapKVPress` (spec §10).
 * - `window` (official 32, kvpress 64): observation window, the last queries of the chunk.
 * - `shortWindow` (official 16, kvpress none = 0): the window when the head holds fewer than
 *   `shortKeys` (1000) keys.
 * - `kernel` (official 7, kvpress 5): pooling kernel (stride 1, padding ⌊kernel/2⌋).
 * - `pool` (official "max", kvpress "avg"): max-pool, or avg-pool counting padded zeros.
 * - `gqa` (official "max-logits", kvpress "mean-probs"): max over the GQA group on the logits
 *   before the softmax, or the mean of the group's probabilities.
 * - `keys` (official "chunk", kvpress "all"): the softmax runs over the first `sinkKeys`
 *   entries (omitted in the first chunk) plus the current chunk's keys, whose scores it sets;
 *   or over every entry, scoring all but the window's own entries, which take the layer's
 *   maximum (kvpress pads them so).
 * - `sinkKeys` (official 4, kvpress 0): sink keys in the softmax with `keys: "chunk"`.
 *
 * With `keys: "all"` and `gqa: "mean-probs"` the window's probabilities come from the store's
 * fused `lastWindowMean` statistic (exact when the last forward held the whole window; else
 * they are recomputed from the buffered queries). During decoding (spec §4.4) the window is the
 * phase's (8): its queries against every entry but the last 8, softmax, mean, pooling; the sinks
 * are forced by the phase. The window attention runs on onnxruntime (score_ort.ts: f32
 * softmax, as the official code's), one call per layer, over keys read with
 * `cache.readEntries` (a read-back on the GPU backend). Ratio-independent. Defaults: per-head
 * (spec §5 pair-head).
 *
 * @module
 */

import { z } from "zod";
import type { LayerTap } from "../engine/model.ts";
import { alignValues, EntryScores, gridFromLayers } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { pool1d, positionRange, QueryWindow } from "./score_kernels.ts";
import { windowAttention, type WindowGqa } from "./score_ort.ts";
import {
  BASELINE_DECODE,
  type MethodContext,
  type MethodDefinition,
  type Scorer,
} from "./types.ts";

/** SnapKV's settings once the variant preset and the overrides are merged. */
export interface SnapSettings {
  window: number;
  shortWindow: number;
  shortKeys: number;
  kernel: number;
  pool: "max" | "avg";
  gqa: WindowGqa;
  keys: "chunk" | "all";
  sinkKeys: number;
}

/** The two presets (spec §5 and §10). */
export const SNAP_PRESETS: Readonly<Record<"official" | "kvpress", SnapSettings>> = {
  official: {
    window: 32,
    shortWindow: 16,
    shortKeys: 1000,
    kernel: 7,
    pool: "max",
    gqa: "max-logits",
    keys: "chunk",
    sinkKeys: 4,
  },
  kvpress: {
    window: 64,
    shortWindow: 0,
    shortKeys: 1000,
    kernel: 5,
    pool: "avg",
    gqa: "mean-probs",
    keys: "all",
    sinkKeys: 0,
  },
};

/** The SnapKV parameter fields, shared with PyramidKV. */
export const snapFields = {
  window: z.number().int().positive().optional().describe(
    "observation window (official 32, kvpress 64)",
  ),
  shortWindow: z.number().int().min(0).optional().describe(
    "window when a head holds fewer than shortKeys keys (official 16, kvpress 0 = none)",
  ),
  shortKeys: z.number().int().positive().default(1000).describe("threshold for shortWindow"),
  kernel: z.number().int().positive().optional().describe("pooling kernel (official 7, kvpress 5)"),
  pool: z.enum(["max", "avg"]).optional().describe("pooling (official max, kvpress avg)"),
  gqa: z.enum(["max-logits", "mean-probs"]).optional().describe(
    "group reduction (official max-logits, kvpress mean-probs)",
  ),
  keys: z.enum(["chunk", "all"]).optional().describe(
    "softmax over sinks + the chunk (official) or over every entry (kvpress)",
  ),
  sinkKeys: z.number().int().min(0).optional().describe("sink keys with keys=chunk (official 4)"),
};

const params = z.object({
  variant: z.enum(["official", "kvpress"]).default("official").describe(
    "preset: official (spec §5) or kvpress (spec §10)",
  ),
  ...snapFields,
}).strict();

/** Parameters of `snapkv`. */
export type SnapKvParams = z.infer<typeof params>;

/** Merge a preset with explicit overrides. */
export function resolveSnap(
  variant: "official" | "kvpress",
  p: Partial<SnapSettings>,
): SnapSettings {
  const out = { ...SNAP_PRESETS[variant] };
  for (const [k, v] of Object.entries(p)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** Which entries of one KV head a window attends to: sinks [0, sinks), keys [from, to). */
interface HeadPlan {
  /** Window rows (the most recent queries). */
  rows: number;
  sinks: number;
  from: number;
  to: number;
}

/** A SnapKV scorer with resolved settings (also PyramidKV's). */
export function snapScorer(s: SnapSettings, ctx: MethodContext): Scorer {
  const { numLayers, numKvHeads, group, headDim } = ctx.cache.shape;
  const heads = numKvHeads * group;
  const decoding = ctx.phase === "decode";
  const capacity = decoding ? Math.max(1, ctx.window) : s.window;
  const windows = Array.from(
    { length: numLayers },
    () => new QueryWindow(capacity, heads * headDim),
  );
  const stored = new EntryScores(numLayers, numKvHeads);
  const fused = !decoding && s.keys === "all" && s.gqa === "mean-probs";
  const lastStats: ({ rows: Float32Array[]; positions: Int32Array[]; tokens: number } | null)[] =
    new Array(numLayers).fill(null);
  const global = (l: number) => ctx.cache.shape.slidingWindows[l] === null;
  const scale = ctx.config.attnScale;
  const shortOr = (n: number) => (s.shortWindow > 0 && n < s.shortKeys ? s.shortWindow : s.window);

  /**
   * Mean window attention of every KV head of layer l over its planned keys (sinks first):
   * one read of the entries and one onnxruntime call for the layer.
   */
  const attention = async (l: number, plan: HeadPlan[]): Promise<Float64Array[]> => {
    const entries = await ctx.cache.readEntries(
      plan.flatMap((p, h) => [
        { layer: l, head: h, from: 0, to: p.sinks },
        { layer: l, head: h, from: p.from, to: p.to },
      ]),
    );
    const rows = windows[l].rows();
    return await windowAttention(
      plan.map((p, h) => {
        const from = Math.max(0, rows.positions.length - p.rows);
        return {
          window: {
            queries: rows.queries.subarray(from * heads * headDim),
            positions: rows.positions.subarray(from),
          },
          sinkKeys: entries[2 * h].keys,
          sinkPositions: entries[2 * h].positions,
          keys: entries[2 * h + 1].keys,
          positions: entries[2 * h + 1].positions,
        };
      }),
      { group, headDim, scale, gqa: s.gqa },
    );
  };

  return {
    stats: (
      layer,
    ) => (fused && global(layer) ? { lastWindowMean: s.window, gqa: "mean" } : undefined),
    observe(tap: LayerTap) {
      if (!global(tap.layer)) return;
      windows[tap.layer].push(tap.queries, tap.positions);
      if (fused && tap.stats !== null) {
        lastStats[tap.layer] = {
          rows: tap.stats.map((st) => st.lastWindowMean!),
          positions: Array.from(
            { length: numKvHeads },
            (_, h) => ctx.cache.positions(tap.layer, h).slice(),
          ),
          tokens: tap.positions.length,
        };
      }
    },
    async score(request) {
      if (decoding) {
        // Spec §4.4: the phase window's queries over every entry but the last w of the head.
        return await gridFromLayers(ctx.cache, async (l) => {
          const lengths = ctx.cache.lengths(l);
          const plan = Array.from(lengths, (n): HeadPlan => {
            const w = Math.min(ctx.window, n);
            return { rows: w, sinks: 0, from: 0, to: n - w };
          });
          const probs = await attention(l, plan);
          return plan.map((p, h) => {
            const out = new Float32Array(lengths[h]).fill(Infinity);
            if (p.to > 0) out.set(pool1d(probs[h], s.kernel, s.pool));
            return out;
          });
        });
      }
      for (let l = 0; l < numLayers; l++) {
        if (!global(l)) continue;
        const positions = Array.from({ length: numKvHeads }, (_, h) => ctx.cache.positions(l, h));
        if (s.keys === "chunk") {
          const plan = positions.map((pos): HeadPlan => {
            const [lo, hi] = positionRange(pos, request.observed.start, request.observed.end);
            return { rows: shortOr(pos.length), sinks: Math.min(s.sinkKeys, lo), from: lo, to: hi };
          });
          if (plan.every((p) => p.to === p.from)) continue;
          const probs = await attention(l, plan);
          plan.forEach((p, h) => {
            if (p.to === p.from) return;
            const pooled = pool1d(probs[h].subarray(p.sinks), s.kernel, s.pool);
            stored.put(l, h, positions[h].subarray(p.from, p.to), pooled);
          });
          continue;
        }
        // keys = "all": score every entry but the window's own, which take the layer maximum.
        const last = lastStats[l];
        const windowOf = (n: number) => Math.min(n, shortOr(n));
        const fromStats = positions.map((pos) =>
          fused && last !== null && last.tokens >= windowOf(pos.length) &&
          windowOf(pos.length) === s.window
        );
        const plan = positions.map((pos, h): HeadPlan =>
          fromStats[h]
            ? { rows: 0, sinks: 0, from: 0, to: 0 }
            : { rows: windowOf(pos.length), sinks: 0, from: 0, to: pos.length }
        );
        const probs = fromStats.every((x) => x) ? [] : await attention(l, plan);
        const pooled: Float32Array[] = [];
        let max = -Infinity;
        for (let h = 0; h < numKvHeads; h++) {
          const pos = positions[h];
          const w = windowOf(pos.length);
          const row = fromStats[h] ? alignValues(pos, last!.positions[h], last!.rows[h]) : probs[h];
          const cols = pool1d(row.subarray(0, pos.length - w), s.kernel, s.pool);
          for (const x of cols) if (x > max) max = x;
          const out = new Float32Array(pos.length).fill(NaN);
          out.set(cols);
          pooled.push(out);
        }
        for (let h = 0; h < numKvHeads; h++) {
          const out = pooled[h];
          for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) out[i] = max;
          stored.put(l, h, positions[h], out);
        }
      }
      return stored.aligned(ctx.cache);
    },
  };
}

/** The `snapkv` method. */
export const snapkv: MethodDefinition<SnapKvParams> = {
  id: "snapkv",
  title: "SnapKV",
  paper: {
    title: "SnapKV: LLM Knows What You are Looking for Before Generation",
    url: "https://arxiv.org/abs/2404.14469",
  },
  summary: "Keeps the entries the last window of queries attends to, pooled over neighbours.",
  params,
  signals: ["attention-stats", "queries", "keys"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "per-head" },
  decode: BASELINE_DECODE,
  createScorer(p, ctx) {
    const { variant, ...overrides } = p;
    return snapScorer(resolveSnap(variant, overrides), ctx);
  },
};

registerMethod(snapkv);
