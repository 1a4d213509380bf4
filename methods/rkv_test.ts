/**
 * R-KV (spec §4.4) against a plain implementation written out here: the window's attention
 * (max over the group on the logits, softmax over all but the window's entries, mean over the
 * window's queries, max-pool), the redundancy (the whole cosine matrix, R-KV's zeroing, column
 * means, softmax), their combination and the window's +∞; a repeated key evicted before a
 * distinct one of equal attention; parameter validation; the conformance suite.
 */

import { assert, assertClose, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { cpuBackend, defineConformanceTests } from "./conformance.ts";
import { describeMethod, parseMethodParams, parseParamArgs } from "./registry.ts";
import { rkv } from "./rkv.ts";
import { evictWithScores } from "./select.ts";
import {
  dot,
  feedLayer,
  handConfig,
  handContext,
  positions,
  randomArray,
  seeded,
  softmax,
  storeFor,
} from "./testing.ts";
import { BASELINE_DECODE, type ScoreRequest } from "./types.ts";

const DECODE_REQUEST: ScoreRequest = {
  observed: { start: 0, end: 2 ** 31 - 1 },
  range: { start: 0, end: 2 ** 31 - 1 },
  budget: { entriesPerHead: 8 },
  keptPerHead: 8,
};

/** torch's max_pool1d with stride 1 and padding ⌊kernel/2⌋, by hand. */
function maxPool(x: number[], kernel: number): number[] {
  const pad = Math.floor(kernel / 2);
  return x.map((_, i) => Math.max(...x.slice(Math.max(0, i - pad), i - pad + kernel)));
}

/** R-KV's `cal_similarity` (retain "last"): the whole matrix, in f64. */
function plainRedundancy(keys: number[][], threshold: number): number[] {
  const n = keys.length;
  const unit = keys.map((k) => {
    const norm = Math.sqrt(dot(k, 0, k, 0, k.length)) + 1e-8;
    return k.map((x) => x / norm);
  });
  const sim = unit.map((u, i) => unit.map((v, j) => (i === j ? 0 : dot(u, 0, v, 0, u.length))));
  for (let i = 0; i < n; i++) {
    let last = 0;
    for (let j = 0; j < n; j++) if (sim[i][j] > threshold) last = j;
    sim[i][last] = 0;
  }
  return softmax(Array.from({ length: n }, (_, j) => sim.reduce((a, row) => a + row[j], 0) / n));
}

Deno.test("rkv: λ·maxpool(window attention) − (1 − λ)·redundancy on all but the window, which scores +∞", async () => {
  const D = 4; // in 4 dimensions many keys are near-duplicates (cos > 0.5) and many are not
  const G = 2;
  const H = 2;
  const w = 3;
  const T = 20;
  const config = handConfig({ layers: 1, kvHeads: H, group: G, headDim: D });
  const scale = 1 / Math.sqrt(D);
  const rand = seeded(31);
  const q = randomArray(rand, T * H * G * D);
  const k = randomArray(rand, T * H * D);
  const v = randomArray(rand, T * H * D);
  const keyAt = (p: number, h: number) => [...k.subarray((p * H + h) * D, (p * H + h + 1) * D)];
  const expected = (
    held: number[][],
    o: { mixLambda: number; kernel: number; threshold: number },
  ) =>
    held.map((pos, h) => {
      const m = pos.length - w;
      const attention = new Array(m).fill(0);
      for (let t = T - w; t < T; t++) {
        const logits = pos.slice(0, m).map((p) =>
          Math.max(...[0, 1].map((g) => dot(q, ((t * H + h) * G + g) * D, k, (p * H + h) * D, D))) *
          scale
        );
        softmax(logits).forEach((x, j) => (attention[j] += x / w));
      }
      const a = maxPool(attention, o.kernel);
      const r = plainRedundancy(pos.map((p) => keyAt(p, h)), o.threshold);
      return [
        ...a.map((x, j) => o.mixLambda * x - (1 - o.mixLambda) * r[j]),
        ...new Array(w).fill(Infinity),
      ];
    });
  const cases = [
    { mixLambda: 1, kernel: 1, threshold: 0.5 }, // the window's attention alone
    { mixLambda: 1, kernel: 7, threshold: 0.5 }, // pooled
    { mixLambda: 0, kernel: 7, threshold: 0.5 }, // the redundancy alone
    { mixLambda: 0.1, kernel: 7, threshold: 0.5 }, // the defaults
    { mixLambda: 0.3, kernel: 3, threshold: 0.2 },
  ];
  for (const o of cases) {
    const cache = storeFor(config);
    const ctx = handContext(cache, config, { phase: "decode", window: w });
    const scorer = rkv.createScorer(parseMethodParams(rkv, o), ctx);
    const feed = (from: number, to: number) =>
      feedLayer(scorer, cache, {
        layer: 0,
        positions: positions(from, to),
        queries: q.slice(from * H * G * D, to * H * G * D),
        keys: k.slice(from * H * D, to * H * D),
        values: v.slice(from * H * D, to * H * D),
        scale,
      });
    // A prompt, decode steps, an uneven eviction, more steps: the window spans forwards.
    await feed(0, 14);
    for (let t = 14; t < 18; t++) await feed(t, t + 1);
    cache.evict(0, [
      Int32Array.of(0, 1, 2, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17),
      positions(4, 18),
    ]);
    for (let t = 18; t < T; t++) await feed(t, t + 1);
    const held = [0, 1].map((h) => [...cache.positions(0, h)]);
    const scores = await scorer.score(DECODE_REQUEST);
    const want = expected(held, o);
    for (let h = 0; h < H; h++) {
      const m = held[h].length - w;
      assertClose(scores[0][h].subarray(0, m), want[h].slice(0, m), 2e-6, 1e-6);
      assertEquals([...scores[0][h].subarray(m)], [Infinity, Infinity, Infinity]);
    }
  }
});

Deno.test("rkv: at equal attention, older repeats of a key go first; its latest copy stays", async () => {
  const D = 16;
  const n = 18;
  const w = 2;
  const config = handConfig({ layers: 1, kvHeads: 1, group: 1, headDim: D });
  const cache = storeFor(config);
  const scorer = rkv.createScorer(
    parseMethodParams(rkv, {}),
    handContext(cache, config, { phase: "decode", window: w }),
  );
  // Orthogonal keys of random norms, except that positions 6 and 10 repeat position 3's key.
  const rand = seeded(32);
  const keys = new Float32Array(n * D);
  const distinct = [...positions(0, n)].filter((p) => p !== 6 && p !== 10);
  for (let p = 0; p < n; p++) {
    const axis = distinct.indexOf(p === 6 || p === 10 ? 3 : p);
    keys[p * D + axis] = 0.5 + rand();
  }
  await feedLayer(scorer, cache, {
    layer: 0,
    positions: positions(0, n),
    queries: new Float32Array(n * D), // zero queries: every entry gets the same attention
    keys,
    values: keys,
    scale: 1,
  });
  const scores = await scorer.score(DECODE_REQUEST);
  const s = scores[0][0];
  // Redundancy: position 3 is repeated by 6 and 10, 6 by 10 only, 10 (the latest) by none.
  assert(s[3] < s[6] && s[6] < s[10], `older repeats score lower: ${s[3]}, ${s[6]}, ${s[10]}`);
  const others = distinct.filter((p) => p !== 3 && p < n - w);
  assertClose(others.map((p) => s[p]), others.map(() => s[10]), 1e-6);
  evictWithScores(cache, scores, {
    budget: { entriesPerHead: n - 2 },
    policy: BASELINE_DECODE.policy,
    range: { start: 0, end: n },
    recent: w,
    context: { start: 0, end: n },
    asked: { entriesPerHead: n - 2 },
  });
  assertEquals([...cache.positions(0, 0)], [...positions(0, n)].filter((p) => p !== 3 && p !== 6));
});

Deno.test("rkv: decode only, the baselines' decode defaults, one-line parameter errors", () => {
  assertEquals(rkv.phases, ["decode"]);
  assertEquals(rkv.decode, BASELINE_DECODE);
  assertEquals(parseMethodParams(rkv, {}), { mixLambda: 0.1, kernel: 7, threshold: 0.5 });
  assertEquals(
    describeMethod("rkv").params.map((p) => [p.name, p.type, p.default]),
    [["mixLambda", "number", 0.1], ["kernel", "integer", 7], ["threshold", "number", 0.5]],
  );
  assertEquals(parseMethodParams(rkv, parseParamArgs(rkv, ["kernel=5", "mixLambda=0.2"])), {
    mixLambda: 0.2,
    kernel: 5,
    threshold: 0.5,
  });
  const bad: [Record<string, unknown>, string][] = [
    [{ kernel: 4 }, 'method rkv: parameter "kernel": expected an odd kernel (got 4)'],
    [{ kernel: 0 }, 'parameter "kernel"'],
    [{ kernel: 2.5 }, 'parameter "kernel"'],
    [{ mixLambda: 1.5 }, 'parameter "mixLambda"'],
    [{ mixLambda: -0.1 }, 'parameter "mixLambda"'],
    [{ threshold: 2 }, 'parameter "threshold"'],
    [{ lambda: 0.1 }, 'method rkv: unknown parameter "lambda"'],
  ];
  for (const [raw, message] of bad) {
    const e = assertThrows(() => parseMethodParams(rkv, raw), InputError, message);
    assert(!e.message.includes("\n"), `one line: ${e.message}`);
  }
  assertThrows(
    () => parseParamArgs(rkv, ["kernel=seven"]),
    InputError,
    'parameter "kernel" expects an integer, got "seven"',
  );
});

defineConformanceTests(cpuBackend("reference", () => referenceAttention), { methods: ["rkv"] });
