/**
 * H2O: accumulated attention over every query of every forward (fused columnSum, mean over the
 * group), the recent share of the budget, and kvpress's normalisation.
 */

import { assertClose, assertEquals } from "../tests/assert.ts";
import { h2o } from "./h2o.ts";
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

const D = 4;
const G = 2;
const H = 2;
const config = handConfig({ layers: 1, kvHeads: H, group: G, headDim: D });
const scale = 1 / Math.sqrt(D);

Deno.test("h2o: column sums over two chunks equal the plain sum of causal softmax rows", async () => {
  const rand = seeded(11);
  const T = 7;
  const q = randomArray(rand, T * H * G * D);
  const k = randomArray(rand, T * H * D);
  const v = randomArray(rand, T * H * D);
  const run = async (raw: Record<string, unknown>, keptPerHead: number) => {
    const cache = storeFor(config);
    const scorer = h2o.createScorer(parseMethodParams(h2o, raw), handContext(cache, config));
    for (const [a, b] of [[0, 4], [4, 7]]) {
      await feedLayer(scorer, cache, {
        layer: 0,
        positions: positions(a, b),
        queries: q.slice(a * H * G * D, b * H * G * D),
        keys: k.slice(a * H * D, b * H * D),
        values: v.slice(a * H * D, b * H * D),
        scale,
      });
    }
    return await scorer.score({
      observed: { start: 0, end: T },
      range: { start: 0, end: T },
      budget: { keptRatio: 0.5 },
      keptPerHead,
    });
  };
  const expected = (h: number, normalize: boolean): number[] => {
    const sums = new Array(T).fill(0);
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < G; g++) {
        const logits = Array.from(
          { length: T },
          (_, j) =>
            j > t ? -Infinity : dot(q, (t * H * G + h * G + g) * D, k, (j * H + h) * D, D) * scale,
        );
        softmax(logits).forEach((x, j) => (sums[j] += x / G));
      }
    }
    return normalize ? sums.map((s, j) => s / (T - j)) : sums;
  };
  const plain = await run({ recentShare: 0 }, 4);
  for (let h = 0; h < H; h++) assertClose(plain[0][h], expected(h, false), 1e-6);
  const normalized = await run({ recentShare: 0, normalize: true }, 4);
  for (let h = 0; h < H; h++) assertClose(normalized[0][h], expected(h, true), 1e-6);
  // recentShare 0.5 of 4 kept per head: the 2 most recent entries are reserved.
  const split = await run({}, 4);
  for (let h = 0; h < H; h++) {
    assertClose(split[0][h].subarray(0, 5), expected(h, false).slice(0, 5), 1e-6);
    assertEquals([...split[0][h].subarray(5)], [Infinity, Infinity]);
  }
});
