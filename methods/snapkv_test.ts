/**
 * SnapKV scores against a plain implementation of spec §5 (official prefill variant), §10
 * (kvpress variant, through the fused statistic and without it) and §4.4 (decoding).
 */

import { assertClose, assertEquals } from "../tests/assert.ts";
import { snapkv } from "./snapkv.ts";
import { parseMethodParams } from "./registry.ts";
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
import type { Scorer } from "./types.ts";

const D = 4;
const G = 2;
const config = handConfig({ layers: 1, kvHeads: 1, group: G, headDim: D });
const scale = 1 / Math.sqrt(D);

interface Data {
  q: Float32Array; // [T, G, D]
  k: Float32Array; // [T, 1, D]
  v: Float32Array;
}

function data(seed: number, T: number): Data {
  const rand = seeded(seed);
  return {
    q: randomArray(rand, T * G * D),
    k: randomArray(rand, T * D),
    v: randomArray(rand, T * D),
  };
}

/** torch max_pool1d / avg_pool1d (count_include_pad) with stride 1, padding ⌊k/2⌋, by hand. */
function pool(x: number[], kernel: number, kind: "max" | "avg"): number[] {
  const pad = Math.floor(kernel / 2);
  return x.map((_, i) => {
    const window: number[] = [];
    for (let j = i - pad; j < i - pad + kernel; j++) if (j >= 0 && j < x.length) window.push(x[j]);
    return kind === "max" ? Math.max(...window) : window.reduce((a, b) => a + b, 0) / kernel;
  });
}

async function feed(
  scorer: Scorer,
  cache: ReturnType<typeof storeFor>,
  d: Data,
  from: number,
  to: number,
  at: number,
): Promise<void> {
  await feedLayer(scorer, cache, {
    layer: 0,
    positions: positions(at + from, at + to),
    queries: d.q.slice(from * G * D, to * G * D),
    keys: d.k.slice(from * D, to * D),
    values: d.v.slice(from * D, to * D),
    scale,
  });
}

Deno.test("snapkv official: max over the group on logits, f32 softmax over sinks + chunk, mean, max-pool", async () => {
  const cache = storeFor(config);
  const p = parseMethodParams(snapkv, { window: 3, shortWindow: 0, kernel: 3, sinkKeys: 2 });
  const scorer = snapkv.createScorer(p, handContext(cache, config));
  const d1 = data(1, 6);
  await feed(scorer, cache, d1, 0, 6, 0);
  const s1 = await scorer.score({
    observed: { start: 0, end: 6 },
    range: { start: 0, end: 6 },
    budget: { keptRatio: 0.5 },
    keptPerHead: 3,
  });
  // Plain: window = positions 3..5, keys = all 6 (first chunk: no sinks), causal.
  const expect1 = (() => {
    const mean = new Array(6).fill(0);
    for (let t = 3; t < 6; t++) {
      const logits = Array.from(
        { length: 6 },
        (_, j) =>
          j > t
            ? -Infinity
            : Math.max(...[0, 1].map((g) => dot(d1.q, (t * G + g) * D, d1.k, j * D, D))) * scale,
      );
      softmax(logits).forEach((x, j) => (mean[j] += x / 3));
    }
    return pool(mean, 3, "max");
  })();
  assertClose(s1[0][0], expect1, 1e-6);

  // Evict positions 2 and 3, then a second chunk: keys = the 2 sinks + the chunk's 4 keys.
  cache.evict(0, [Int32Array.of(0, 1, 4, 5)]);
  const d2 = data(2, 4);
  await feed(scorer, cache, d2, 0, 4, 6);
  const s2 = await scorer.score({
    observed: { start: 6, end: 10 },
    range: { start: 4, end: 8 },
    budget: { keptRatio: 0.5 },
    keptPerHead: 2,
  });
  const expect2 = (() => {
    const keyRows: [Float32Array, number, number][] = [
      [d1.k, 0, 0],
      [d1.k, 1, 1],
      ...[0, 1, 2, 3].map((j) => [d2.k, j, 6 + j] as [Float32Array, number, number]),
    ];
    const mean = new Array(keyRows.length).fill(0);
    for (let t = 1; t < 4; t++) {
      const logits = keyRows.map(([k, row, pos]) =>
        pos > 6 + t
          ? -Infinity
          : Math.max(...[0, 1].map((g) => dot(d2.q, (t * G + g) * D, k, row * D, D))) * scale
      );
      softmax(logits).forEach((x, j) => (mean[j] += x / 3));
    }
    return pool(mean.slice(2), 3, "max");
  })();
  // Entries now: positions 0, 1, 4, 5 (chunk-1 scores kept) and 6..9 (chunk 2).
  assertClose(s2[0][0], [expect1[0], expect1[1], expect1[4], expect1[5], ...expect2], 1e-6);
});

Deno.test("snapkv kvpress: fused lastWindowMean and the hand path agree with the plain formula", async () => {
  const d = data(3, 8);
  const expected = (() => {
    const W = 3;
    const mean = new Array(8).fill(0);
    for (let t = 8 - W; t < 8; t++) {
      for (let g = 0; g < G; g++) {
        const logits = Array.from(
          { length: 8 },
          (_, j) => (j > t ? -Infinity : dot(d.q, (t * G + g) * D, d.k, j * D, D) * scale),
        );
        softmax(logits).forEach((x, j) => (mean[j] += x / (W * G)));
      }
    }
    const pooled = pool(mean.slice(0, 8 - W), 5, "avg");
    const max = Math.max(...pooled);
    return [...pooled, max, max, max];
  })();
  // All 8 tokens in one call: the fused statistic covers the window.
  for (const split of [8, 6]) {
    const cache = storeFor(config);
    const p = parseMethodParams(snapkv, { variant: "kvpress", window: 3 });
    const scorer = snapkv.createScorer(p, handContext(cache, config));
    await feed(scorer, cache, d, 0, split, 0);
    if (split < 8) await feed(scorer, cache, d, split, 8, 0); // the last call holds 2 < 3 queries
    const s = await scorer.score({
      observed: { start: 0, end: 8 },
      range: { start: 0, end: 8 },
      budget: { keptRatio: 0.5 },
      keptPerHead: 4,
    });
    assertClose(s[0][0], expected, 1e-6);
  }
});

Deno.test("snapkv decoding (spec §4.4): the phase window's queries over all but the last w entries", async () => {
  const cache = storeFor(config);
  const p = parseMethodParams(snapkv, {});
  const scorer = snapkv.createScorer(p, handContext(cache, config, { phase: "decode", window: 2 }));
  const d = data(4, 12);
  await feed(scorer, cache, d, 0, 9, 0);
  for (let t = 9; t < 12; t++) await feed(scorer, cache, d, t, t + 1, 0);
  const s = await scorer.score({
    observed: { start: 0, end: 12 },
    range: { start: 0, end: 2 ** 31 - 1 },
    budget: { entriesPerHead: 6 },
    keptPerHead: 6,
  });
  const mean = new Array(10).fill(0);
  for (const t of [10, 11]) {
    const logits = Array.from(
      { length: 10 },
      (_, j) => Math.max(...[0, 1].map((g) => dot(d.q, (t * G + g) * D, d.k, j * D, D))) * scale,
    );
    softmax(logits).forEach((x, j) => (mean[j] += x / 2));
  }
  assertClose(s[0][0].subarray(0, 10), pool(mean, 7, "max"), 1e-6);
  assertEquals([...s[0][0].subarray(10)], [Infinity, Infinity]);
});
