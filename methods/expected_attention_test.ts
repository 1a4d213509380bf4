/**
 * Expected Attention (spec §5 official, §10 kvpress) against a plain implementation with an
 * explicit d×d averaged rotation, and the un-rotation of post-RoPE queries it relies on.
 */

import { assertClose } from "../tests/assert.ts";
import { applyRope, ropeFrequencies, ropeTables } from "../engine/rope.ts";
import { expectedAttention } from "./expected_attention.ts";
import { parseMethodParams } from "./registry.ts";
import { unrotate } from "./score_kernels.ts";
import {
  feedLayer,
  handConfig,
  handContext,
  positions,
  randomArray,
  seeded,
  softmax,
  storeFor,
} from "./testing.ts";

const D = 4;
const G = 2;
const HEADS = G; // one KV head
const rope = { theta: 10000, scaling: null };
const config = handConfig({ layers: 1, kvHeads: 1, group: G, headDim: D, rope });

function rotated(pre: Float32Array, pos: Int32Array): Float32Array {
  const post = pre.slice();
  applyRope(post, ropeTables(ropeFrequencies(D, rope), pos), {
    tokens: pos.length,
    heads: HEADS,
    headDim: D,
  });
  return post;
}

/** mean over [start, start + count) of the d×d RoPE rotation matrices. */
function averagedRotation(start: number, count: number): number[][] {
  const half = D / 2;
  const t = ropeTables(ropeFrequencies(D, rope), positions(start, start + count));
  const R = Array.from({ length: D }, () => new Array(D).fill(0));
  for (let p = 0; p < count; p++) {
    for (let i = 0; i < half; i++) {
      const c = t.cos[p * half + i] / count;
      const s = t.sin[p * half + i] / count;
      R[i][i] += c;
      R[i][i + half] -= s;
      R[i + half][i] += s;
      R[i + half][i + half] += c;
    }
  }
  return R;
}

const matmul = (a: number[][], b: number[][]) =>
  a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
const transpose = (a: number[][]) => a[0].map((_, j) => a.map((row) => row[j]));

/** Plain spec §5 scores of the chunk's keys, from its pre-RoPE queries. */
function plainScores(o: {
  pre: Float32Array; // [T, HEADS, D]
  keys: Float32Array; // [n, D]
  values: Float32Array;
  ropeStart: number;
  divisor: "heads" | "tokens";
  epsilon: number;
  nSink: number;
}): number[] {
  const T = o.pre.length / (HEADS * D);
  const drop = Math.min(4, T - 1);
  const n = o.keys.length / D;
  const R = averagedRotation(o.ropeStart, 512);
  const probs = new Array(n - o.nSink).fill(0);
  for (let g = 0; g < G; g++) {
    const qs: number[][] = [];
    for (let t = drop; t < T; t++) {
      qs.push(Array.from(o.pre.subarray((t * HEADS + g) * D, (t * HEADS + g + 1) * D)));
    }
    const mu = Array.from({ length: D }, (_, x) => qs.reduce((s, q) => s + q[x], 0) / qs.length);
    const cov = Array.from(
      { length: D },
      (_, x) =>
        Array.from(
          { length: D },
          (_, y) =>
            qs.reduce((s, q) => s + (q[x] - mu[x]) * (q[y] - mu[y]), 0) /
            (o.divisor === "heads" ? HEADS : qs.length),
        ),
    );
    const muR = matmul(R, mu.map((x) => [x])).map((r) => r[0]);
    const covR = matmul(matmul(R, cov), transpose(R));
    const logits: number[] = [];
    for (let j = o.nSink; j < n; j++) {
      const k = Array.from(o.keys.subarray(j * D, (j + 1) * D));
      const lin = muR.reduce((s, m, x) => s + m * k[x], 0) / Math.sqrt(D);
      const quad = k.reduce((s, kx, x) =>
        s + kx * covR[x].reduce((t, c, y) => t + c * k[y], 0), 0) / (2 * D);
      logits.push(lin + quad);
    }
    softmax(logits).forEach((p, j) => (probs[j] += p / G));
  }
  const out = probs.map((p, j) => {
    const v = o.values.subarray((j + o.nSink) * D, (j + o.nSink + 1) * D);
    return (p + o.epsilon) * Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  });
  const max = Math.max(...out);
  return [...new Array(o.nSink).fill(max), ...out];
}

Deno.test("unrotate undoes RoPE, attention scaling (YaRN) included", () => {
  const rand = seeded(3);
  const x = randomArray(rand, 5 * 3 * 8);
  const pos = positions(100, 105);
  for (const spec of [rope, { theta: 1e6, scaling: { type: "linear" as const, factor: 4 } }]) {
    const freqs = { ...ropeFrequencies(8, spec), attentionScaling: 1.3 };
    const post = x.slice();
    applyRope(post, ropeTables(freqs, pos), { tokens: 5, heads: 3, headDim: 8 });
    assertClose(unrotate(post, pos, { freqs, heads: 3, headDim: 8 }), x, 1e-5, 1e-3);
  }
});

Deno.test("expected-attention official: per-chunk μ, Σ/heads, RoPE averaged from the absolute length, ε = 0.02", async () => {
  const rand = seeded(9);
  const cache = storeFor(config);
  const scorer = expectedAttention.createScorer(
    parseMethodParams(expectedAttention, {}),
    handContext(cache, config),
  );
  const chunks = [[0, 7], [7, 12]];
  const data = chunks.map(([a, b]) => ({
    pre: randomArray(rand, (b - a) * HEADS * D),
    keys: randomArray(rand, (b - a) * D),
    values: randomArray(rand, (b - a) * D),
  }));
  let last: Float32Array[][] = [];
  for (const [i, [a, b]] of chunks.entries()) {
    const pos = positions(a, b);
    await feedLayer(scorer, cache, {
      layer: 0,
      positions: pos,
      queries: rotated(data[i].pre, pos),
      keys: data[i].keys,
      values: data[i].values,
      scale: 0.5,
    });
    last = await scorer.score({
      observed: { start: a, end: b },
      range: { start: a, end: b },
      budget: { keptRatio: 0.5 },
      keptPerHead: 2,
    });
  }
  const want = chunks.flatMap(([, b], i) =>
    plainScores({ ...data[i], ropeStart: b, divisor: "heads", epsilon: 0.02, nSink: 0 })
  );
  assertClose(last[0][0], want, 1e-4);
});

Deno.test("expected-attention kvpress: Σ/tokens, RoPE from the chunk length, ε = 0, 4 sink keys at the max", async () => {
  const rand = seeded(10);
  const cache = storeFor(config);
  const scorer = expectedAttention.createScorer(
    parseMethodParams(expectedAttention, { variant: "kvpress" }),
    handContext(cache, config),
  );
  const pre = randomArray(rand, 9 * HEADS * D);
  const keys = randomArray(rand, 9 * D);
  const values = randomArray(rand, 9 * D);
  // A chunk that starts at position 3 (after 3 earlier tokens): ropeStart = its length, 6.
  cache.append(0, randomArray(rand, 3 * D), randomArray(rand, 3 * D), positions(0, 3));
  const pos = positions(3, 9);
  await feedLayer(scorer, cache, {
    layer: 0,
    positions: pos,
    queries: rotated(pre.subarray(3 * HEADS * D), pos),
    keys: keys.subarray(3 * D),
    values: values.subarray(3 * D),
    scale: 0.5,
  });
  const s = await scorer.score({
    observed: { start: 3, end: 9 },
    range: { start: 3, end: 9 },
    budget: { keptRatio: 0.5 },
    keptPerHead: 2,
  });
  const want = plainScores({
    pre: pre.subarray(3 * HEADS * D),
    keys: keys.subarray(3 * D),
    values: values.subarray(3 * D),
    ropeStart: 6,
    divisor: "tokens",
    epsilon: 0,
    nSink: 4,
  });
  assertClose(s[0][0].subarray(3), want, 1e-4);
});
