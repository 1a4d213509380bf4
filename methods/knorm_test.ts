/** knorm, streamingllm and random: scores read straight from the store, by hand. */

import { assert, assertEquals } from "../tests/assert.ts";
import { knorm } from "./knorm.ts";
import { random } from "./random.ts";
import { streamingllm } from "./streamingllm.ts";
import { parseMethodParams } from "./registry.ts";
import { handConfig, handContext, positions, storeFor } from "./testing.ts";
import type { ScoreRequest } from "./types.ts";

const config = handConfig({ layers: 2, kvHeads: 1, group: 1, headDim: 2 });
const request: ScoreRequest = {
  observed: { start: 0, end: 4 },
  range: { start: 0, end: 4 },
  budget: { keptRatio: 0.5 },
  keptPerHead: 2,
};

function filled() {
  const cache = storeFor(config);
  const k = Float32Array.of(3, 4, 0, 0, 1, 0, -6, 8);
  for (let l = 0; l < 2; l++) cache.append(l, k, k, positions(0, 4));
  return cache;
}

Deno.test("knorm scores −‖k‖₂ of the stored keys", async () => {
  const cache = filled();
  const s = await knorm.createScorer({}, handContext(cache, config)).score(request);
  assertEquals([...s[0][0]], [-5, -0, -1, -10]);
});

Deno.test("streamingllm scores the sinks +∞ and every other entry its position", async () => {
  const cache = filled();
  const s = await streamingllm.createScorer(
    parseMethodParams(streamingllm, { sinks: 1 }),
    handContext(cache, config),
  ).score(request);
  assertEquals([...s[1][0]], [Infinity, 1, 2, 3]);
});

Deno.test("random is seeded, differs by layer and seed, and follows entries through eviction", async () => {
  const cache = filled();
  const ctx = handContext(cache, config);
  const a = await random.createScorer({ seed: 0 }, ctx).score(request);
  const again = await random.createScorer({ seed: 0 }, ctx).score(request);
  const other = await random.createScorer({ seed: 1 }, ctx).score(request);
  assertEquals(a, again);
  assert(a[0][0].some((x, i) => x !== other[0][0][i]), "another seed, other scores");
  assert(a[0][0].some((x, i) => x !== a[1][0][i]), "another layer, other scores");
  assert(a[0][0].every((x) => x >= 0 && x < 1), "uniform in [0, 1)");
  cache.evict(0, [Int32Array.of(1, 3)]);
  const after = await random.createScorer({ seed: 0 }, ctx).score(request);
  assertEquals([...after[0][0]], [a[0][0][1], a[0][0][3]]);
});
