/**
 * `expected-attention`: scores each key by the attention that future queries are expected to
 * give it, modelling those queries as a Gaussian fitted to the chunk's queries.
 *
 * Paper: Devoto et al., "Expected Attention: KV Cache Compression by Estimating Attention from
 * Future Queries Distribution", https://arxiv.org/abs/2510.00636 (kvpress
 * `ExpectedAttentionPress`; spec §5 for the official Fast KVzip baseline, §10 for kvpress's).
 *
 * Parameters (`variant` picks a preset; each other parameter overrides it):
 * - `variant` (default "official"): "official" (spec §5) or "kvpress" (spec §10).
 * - `nFuture` (512): RoPE is averaged over this many future positions.
 * - `epsilon` (official 0.02, kvpress 0): added to the probability before the value norm.
 * - `nSink` (official 0, kvpress 4): the chunk's first keys are not scored; they take the
 *   layer's maximum.
 * - `covDivisor` (official "heads", kvpress "tokens"): the centred outer-product sum is divided
 *   by the number of query heads (as the official copy does) or of queries.
 * - `ropeStart` (official "absolute", kvpress "chunk-length"): the averaged RoPE starts at the
 *   absolute length after the chunk, or at the chunk's length (kvpress's q_len).
 * - `dropFirst` (4): the chunk's first min(dropFirst, q − 1) queries are left out of μ and Σ.
 * - `covariance` (true): include the kᵀΣk/(2d) term.
 * - `valueNorm` (true): multiply by ‖v‖₂.
 *
 * Per chunk, per query head: μ and Σ of the pre-RoPE queries, rotated by the averaged RoPE R̄
 * (μ′ = R̄μ, Σ′ = R̄ΣR̄ᵀ); per key of the chunk: logit = μ′·k/√d + kᵀΣ′k/(2d), softmax over
 * the chunk's keys (f32, spec §5), mean over the GQA group, score = (p + ε)·‖v‖. The d×d work
 * runs on onnxruntime (score_ort.ts): each forward's queries are reduced to a mean and a
 * scatter (merged in f64 across forwards), and each chunk's keys and values, read with
 * `cache.readEntries` (a read-back on the GPU backend), are scored in one call per layer.
 *
 * Query source: the post-RoPE queries of the tap, un-rotated (score_kernels `unrotate`). That
 * gives exactly the pre-RoPE queries the model computed, q/k norms (Qwen3, Gemma3) and biases
 * included, with no extra projection and no weight access (recomputing from hidden states is
 * where kvpress got Qwen3 wrong, harness-anchors §4 #6). Keys are the store's post-RoPE keys.
 * Ratio-independent. Default policy: per-layer with the AdaKV safeguard 0.2 (spec §5
 * `adakv-layer`).
 *
 * @module
 */

import { z } from "zod";
import type { LayerTap } from "../engine/model.ts";
import {
  type RopeFrequencies,
  ropeFrequencies,
  type RopeTables,
  ropeTables,
} from "../engine/rope.ts";
import { EntryScores } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { averageRotation, positionRange, unrotate } from "./score_kernels.ts";
import { expectedAttention as expectedAttentionScores, QueryMoments } from "./score_ort.ts";
import type { MethodDefinition } from "./types.ts";

/** Settings after merging the preset with the overrides. */
export interface ExpectedAttentionSettings {
  nFuture: number;
  epsilon: number;
  nSink: number;
  covDivisor: "heads" | "tokens";
  ropeStart: "absolute" | "chunk-length";
  dropFirst: number;
  covariance: boolean;
  valueNorm: boolean;
}

/** The presets of spec §5 (official) and §10 (kvpress). */
export const EXPECTED_ATTENTION_PRESETS: Readonly<
  Record<"official" | "kvpress", ExpectedAttentionSettings>
> = {
  official: {
    nFuture: 512,
    epsilon: 0.02,
    nSink: 0,
    covDivisor: "heads",
    ropeStart: "absolute",
    dropFirst: 4,
    covariance: true,
    valueNorm: true,
  },
  kvpress: {
    nFuture: 512,
    epsilon: 0,
    nSink: 4,
    covDivisor: "tokens",
    ropeStart: "chunk-length",
    dropFirst: 4,
    covariance: true,
    valueNorm: true,
  },
};

const params = z.object({
  variant: z.enum(["official", "kvpress"]).default("official").describe(
    "preset: official (spec §5) or kvpress (spec §10)",
  ),
  nFuture: z.number().int().positive().optional().describe(
    "future positions RoPE is averaged over (512)",
  ),
  epsilon: z.number().min(0).optional().describe(
    "added to p before the value norm (official 0.02, kvpress 0)",
  ),
  nSink: z.number().int().min(0).optional().describe(
    "first chunk keys not scored (official 0, kvpress 4)",
  ),
  covDivisor: z.enum(["heads", "tokens"]).optional().describe(
    "divide the covariance by query heads (official) or queries (kvpress)",
  ),
  ropeStart: z.enum(["absolute", "chunk-length"]).optional().describe(
    "averaged RoPE starts at the absolute length (official) or the chunk length (kvpress)",
  ),
  dropFirst: z.number().int().min(0).optional().describe(
    "first queries left out of the statistics (4)",
  ),
  covariance: z.boolean().optional().describe("include the covariance term (true)"),
  valueNorm: z.boolean().optional().describe("multiply by the value norm (true)"),
}).strict();

/** Parameters of `expected-attention`. */
export type ExpectedAttentionParams = z.infer<typeof params>;

interface LayerAccumulator {
  /** Queries of the current chunk seen so far (dropped ones included). */
  tokens: number;
  /** Mean and scatter of the queries accumulated (index ≥ dropFirst). */
  moments: QueryMoments;
  /** The first dropFirst pre-RoPE queries of the chunk, in case the chunk is that short. */
  first: Float32Array[];
}

/** The `expected-attention` method. */
export const expectedAttention: MethodDefinition<ExpectedAttentionParams> = {
  id: "expected-attention",
  title: "Expected Attention",
  paper: {
    title:
      "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries Distribution",
    url: "https://arxiv.org/abs/2510.00636",
  },
  summary: "Keeps the keys future queries (a Gaussian fit of the chunk's queries) would attend to.",
  params,
  signals: ["queries", "keys", "values"],
  phases: ["prefill", "chunked-prefill"],
  ratioIndependent: true,
  policy: { policy: "per-layer", safeguard: 0.2 },
  createScorer(p, ctx) {
    const { variant, ...overrides } = p;
    const s = { ...EXPECTED_ATTENTION_PRESETS[variant] };
    for (const [k, v] of Object.entries(overrides)) {
      if (v !== undefined) (s as Record<string, unknown>)[k] = v;
    }
    const { numLayers, numKvHeads, group, headDim: d } = ctx.cache.shape;
    const heads = numKvHeads * group;
    // Layers sharing a RoPE spec share one frequency object, so each forward's tables
    // (for un-rotating its queries) are built once, not once per layer.
    const bySpec = new Map<string, RopeFrequencies>();
    const freqs = ctx.config.layers.map((layer) => {
      const key = JSON.stringify(layer.rope);
      if (!bySpec.has(key)) bySpec.set(key, ropeFrequencies(d, layer.rope));
      return bySpec.get(key)!;
    });
    let tables: { freqs: RopeFrequencies; positions: Int32Array; tables: RopeTables } | null = null;
    const tablesFor = (f: RopeFrequencies, positions: Int32Array): RopeTables => {
      if (tables === null || tables.freqs !== f || tables.positions !== positions) {
        tables = { freqs: f, positions, tables: ropeTables(f, positions) };
      }
      return tables.tables;
    };
    const global = (l: number) => ctx.cache.shape.slidingWindows[l] === null;
    const fresh = (): LayerAccumulator => ({
      tokens: 0,
      moments: new QueryMoments(heads, d),
      first: [],
    });
    const acc: (LayerAccumulator | null)[] = Array.from(
      { length: numLayers },
      (_, l) => (global(l) ? fresh() : null),
    );
    const stored = new EntryScores(numLayers, numKvHeads);
    let scoredUpTo = -1;

    const scoreLayer = async (
      l: number,
      a: LayerAccumulator,
      observed: { start: number; end: number },
    ): Promise<void> => {
      // Short chunks: drop only min(dropFirst, q − 1) queries.
      const drop = Math.min(s.dropFirst, Math.max(0, a.tokens - 1));
      for (let i = drop; i < a.first.length; i++) a.moments.addRow(a.first[i]);
      const N = a.moments.count;
      if (N === 0) return;
      const start = s.ropeStart === "absolute" ? observed.end : observed.end - observed.start;
      const rot = averageRotation(freqs[l], start, s.nFuture);
      const half = d / 2;
      const div = s.covDivisor === "heads" ? heads : N;
      // Per KV head: μ′/√d [G, d] and Σ′/(2d) [G, d, d] of its group, in f32 for the graph.
      const mus = Array.from({ length: numKvHeads }, () => new Float32Array(group * d));
      const covs = Array.from({ length: numKvHeads }, () => new Float32Array(group * d * d));
      for (let j = 0; j < heads; j++) {
        const mu = a.moments.mean.subarray(j * d, (j + 1) * d);
        const cov = new Float64Array(d * d);
        for (let x = 0; x < d * d; x++) cov[x] = a.moments.scatter[j * d * d + x] / div;
        // μ′ = R̄μ, Σ′ = R̄ΣR̄ᵀ, R̄ rotating each pair (i, i + d/2) by the averaged cos/sin.
        const muR = mus[Math.floor(j / group)].subarray((j % group) * d, (j % group + 1) * d);
        for (let i = 0; i < half; i++) {
          muR[i] = (rot.cos[i] * mu[i] - rot.sin[i] * mu[i + half]) / Math.sqrt(d);
          muR[i + half] = (rot.sin[i] * mu[i] + rot.cos[i] * mu[i + half]) / Math.sqrt(d);
        }
        const tmp = new Float64Array(d * d);
        for (let i = 0; i < half; i++) {
          for (let y = 0; y < d; y++) {
            tmp[i * d + y] = rot.cos[i] * cov[i * d + y] - rot.sin[i] * cov[(i + half) * d + y];
            tmp[(i + half) * d + y] = rot.sin[i] * cov[i * d + y] +
              rot.cos[i] * cov[(i + half) * d + y];
          }
        }
        const covR = covs[Math.floor(j / group)].subarray(
          (j % group) * d * d,
          (j % group + 1) * d * d,
        );
        for (let x = 0; x < d; x++) {
          for (let i = 0; i < half; i++) {
            covR[x * d + i] = (rot.cos[i] * tmp[x * d + i] - rot.sin[i] * tmp[x * d + i + half]) /
              (2 * d);
            covR[x * d + i + half] = (rot.sin[i] * tmp[x * d + i] +
              rot.cos[i] * tmp[x * d + i + half]) / (2 * d);
          }
        }
      }
      // The chunk's entries of each head; the first nSink of them are not scored.
      const spans = Array.from({ length: numKvHeads }, (_, h) => {
        const positions = ctx.cache.positions(l, h);
        const [lo, hi] = positionRange(positions, observed.start, observed.end);
        const sinks = Math.min(s.nSink, hi - lo);
        return { positions: positions.slice(lo, hi), from: lo + sinks, to: hi, sinks };
      });
      const entries = await ctx.cache.readEntries(
        spans.map((span, h) => ({ layer: l, head: h, from: span.from, to: span.to })),
      );
      const scores = await expectedAttentionScores(
        entries.map((e, h) => ({ keys: e.keys, values: e.values, mu: mus[h], cov: covs[h] })),
        { group, headDim: d, covariance: s.covariance, valueNorm: s.valueNorm, epsilon: s.epsilon },
      );
      let layerMax = -Infinity;
      for (const row of scores) for (const x of row) if (x > layerMax) layerMax = x;
      spans.forEach(({ positions, sinks }, h) => {
        const all = new Float64Array(positions.length);
        all.fill(layerMax, 0, sinks);
        all.set(scores[h], sinks);
        stored.put(l, h, positions, all);
      });
    };

    return {
      async observe(tap: LayerTap) {
        const a = acc[tap.layer];
        if (a === null) return;
        const pre = unrotate(tap.queries, tap.positions, {
          freqs: freqs[tap.layer],
          heads,
          headDim: d,
          tables: tablesFor(freqs[tap.layer], tap.positions),
        });
        const row = heads * d;
        const T = tap.positions.length;
        let t = 0;
        for (; t < T && a.tokens < s.dropFirst; t++, a.tokens++) {
          a.first.push(pre.slice(t * row, (t + 1) * row));
        }
        await a.moments.addBatch(pre.subarray(t * row), T - t);
        a.tokens += T - t;
      },
      async score(request) {
        // Each chunk's keys are scored once, from that chunk's queries.
        if (request.observed.end > scoredUpTo) {
          for (let l = 0; l < numLayers; l++) {
            const a = acc[l];
            if (a === null) continue;
            await scoreLayer(l, a, request.observed);
            acc[l] = fresh();
          }
          scoredUpTo = request.observed.end;
        }
        return stored.aligned(ctx.cache);
      },
    };
  },
};

registerMethod(expectedAttention);
