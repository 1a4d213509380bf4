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
 * the chunk's keys (f64), mean over the GQA group, score = (p + ε)·‖v‖.
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
import { ropeFrequencies } from "../engine/rope.ts";
import { EntryScores } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { averageRotation, positionRange, unrotate } from "./score_kernels.ts";
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
  /** Queries accumulated (index ≥ dropFirst). */
  count: number;
  sum: Float64Array;
  outer: Float64Array;
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
    const freqs = ctx.config.layers.map((layer) => ropeFrequencies(d, layer.rope));
    const global = (l: number) => ctx.cache.shape.slidingWindows[l] === null;
    const fresh = (): LayerAccumulator => ({
      tokens: 0,
      count: 0,
      sum: new Float64Array(heads * d),
      outer: new Float64Array(heads * d * d),
      first: [],
    });
    const acc: (LayerAccumulator | null)[] = Array.from(
      { length: numLayers },
      (_, l) => (global(l) ? fresh() : null),
    );
    const stored = new EntryScores(numLayers, numKvHeads);
    let scoredUpTo = -1;

    const accumulate = (a: LayerAccumulator, q: Float32Array, off: number): void => {
      a.count++;
      for (let j = 0; j < heads; j++) {
        const base = off + j * d;
        for (let x = 0; x < d; x++) {
          const qx = q[base + x];
          a.sum[j * d + x] += qx;
          const row = (j * d + x) * d;
          for (let y = 0; y < d; y++) a.outer[row + y] += qx * q[base + y];
        }
      }
    };

    const scoreLayer = (
      l: number,
      a: LayerAccumulator,
      observed: { start: number; end: number },
    ) => {
      // Short chunks: drop only min(dropFirst, q − 1) queries.
      const drop = Math.min(s.dropFirst, Math.max(0, a.tokens - 1));
      for (let i = drop; i < a.first.length; i++) accumulate(a, a.first[i], 0);
      const N = a.count;
      if (N === 0) return;
      const start = s.ropeStart === "absolute" ? observed.end : observed.end - observed.start;
      const rot = averageRotation(freqs[l], start, s.nFuture);
      const half = d / 2;
      const mus: Float64Array[] = [];
      const covs: Float64Array[] = [];
      for (let j = 0; j < heads; j++) {
        const mu = new Float64Array(d);
        for (let x = 0; x < d; x++) mu[x] = a.sum[j * d + x] / N;
        const cov = new Float64Array(d * d);
        const div = s.covDivisor === "heads" ? heads : N;
        for (let x = 0; x < d; x++) {
          for (let y = 0; y < d; y++) {
            cov[x * d + y] = (a.outer[(j * d + x) * d + y] - N * mu[x] * mu[y]) / div;
          }
        }
        // μ′ = R̄μ, Σ′ = R̄ΣR̄ᵀ, R̄ rotating each pair (i, i + d/2) by the averaged cos/sin.
        const muR = new Float64Array(d);
        for (let i = 0; i < half; i++) {
          muR[i] = rot.cos[i] * mu[i] - rot.sin[i] * mu[i + half];
          muR[i + half] = rot.sin[i] * mu[i] + rot.cos[i] * mu[i + half];
        }
        const tmp = new Float64Array(d * d);
        for (let i = 0; i < half; i++) {
          for (let y = 0; y < d; y++) {
            tmp[i * d + y] = rot.cos[i] * cov[i * d + y] - rot.sin[i] * cov[(i + half) * d + y];
            tmp[(i + half) * d + y] = rot.sin[i] * cov[i * d + y] +
              rot.cos[i] * cov[(i + half) * d + y];
          }
        }
        const covR = new Float64Array(d * d);
        for (let x = 0; x < d; x++) {
          for (let i = 0; i < half; i++) {
            covR[x * d + i] = rot.cos[i] * tmp[x * d + i] - rot.sin[i] * tmp[x * d + i + half];
            covR[x * d + i + half] = rot.sin[i] * tmp[x * d + i] +
              rot.cos[i] * tmp[x * d + i + half];
          }
        }
        mus.push(muR);
        covs.push(covR);
      }
      const perHead: { positions: Int32Array; scores: Float64Array; sinks: number }[] = [];
      let layerMax = -Infinity;
      for (let h = 0; h < numKvHeads; h++) {
        const seg = ctx.cache.segment(l, h);
        const [lo, hi] = positionRange(seg, observed.start, observed.end);
        const sinks = Math.min(s.nSink, hi - lo);
        const k0 = lo + sinks;
        const n = hi - k0;
        const probs = new Float64Array(n);
        const logits = new Float64Array(n);
        const kv = new Float64Array(d);
        for (let g = 0; g < group; g++) {
          const mu = mus[h * group + g];
          const cov = covs[h * group + g];
          let max = -Infinity;
          for (let j = 0; j < n; j++) {
            const kOff = (k0 + j) * d;
            let dot = 0;
            for (let x = 0; x < d; x++) dot += mu[x] * seg.keys[kOff + x];
            let quad = 0;
            if (s.covariance) {
              for (let x = 0; x < d; x++) {
                let row = 0;
                for (let y = 0; y < d; y++) row += cov[x * d + y] * seg.keys[kOff + y];
                kv[x] = row;
              }
              for (let x = 0; x < d; x++) quad += seg.keys[kOff + x] * kv[x];
            }
            logits[j] = dot / Math.sqrt(d) + quad / (2 * d);
            if (logits[j] > max) max = logits[j];
          }
          let sum = 0;
          for (let j = 0; j < n; j++) {
            logits[j] = Math.exp(logits[j] - max);
            sum += logits[j];
          }
          for (let j = 0; j < n; j++) probs[j] += logits[j] / sum / group;
        }
        for (let j = 0; j < n; j++) {
          let norm = 1;
          if (s.valueNorm) {
            let v2 = 0;
            const vOff = (k0 + j) * d;
            for (let x = 0; x < d; x++) v2 += seg.values[vOff + x] ** 2;
            norm = Math.sqrt(v2);
          }
          probs[j] = (probs[j] + s.epsilon) * norm;
          if (probs[j] > layerMax) layerMax = probs[j];
        }
        perHead.push({ positions: seg.positions.slice(lo, hi), scores: probs, sinks });
      }
      for (let h = 0; h < numKvHeads; h++) {
        const { positions, scores, sinks } = perHead[h];
        const all = new Float64Array(positions.length);
        all.fill(layerMax, 0, sinks);
        all.set(scores, sinks);
        stored.put(l, h, positions, all);
      }
    };

    return {
      observe(tap: LayerTap) {
        const a = acc[tap.layer];
        if (a === null) return;
        const pre = unrotate(tap.queries, tap.positions, {
          freqs: freqs[tap.layer],
          heads,
          headDim: d,
        });
        const row = heads * d;
        for (let t = 0; t < tap.positions.length; t++) {
          if (a.tokens < s.dropFirst) a.first.push(pre.slice(t * row, (t + 1) * row));
          else accumulate(a, pre, t * row);
          a.tokens++;
        }
      },
      score(request) {
        // Each chunk's keys are scored once, from that chunk's queries.
        if (request.observed.end > scoredUpTo) {
          for (let l = 0; l < numLayers; l++) {
            const a = acc[l];
            if (a === null) continue;
            scoreLayer(l, a, request.observed);
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
