/** PyramidKV's per-layer budgets: kvpress's linear schedule, including its clamp. */

import { assertClose, assertEquals } from "../tests/assert.ts";
import { pyramidWeights } from "./pyramidkv.ts";

Deno.test("pyramidkv: budgets fall linearly from 2k − k/β to k/β, mean k", () => {
  // k = 20 of m = 100 per head, 4 layers, β = 20: min 1, max 39, step 38/3.
  const w = pyramidWeights(20, { layers: 4, population: 100, kept: 20 })!;
  assertClose(Array.from(w, (x) => x * 20), [39, 39 - 38 / 3, 1 + 38 / 3, 1], 1e-12);
  assertClose([w.reduce((a, b) => a + b, 0) / 4], [1], 1e-12);
});

Deno.test("pyramidkv: a top budget above the population is clamped and the bottom raised", () => {
  // k = 60 of m = 100: max would be 117 > 100 → max 100, min 2·60 − 100 = 20.
  const w = pyramidWeights(20, { layers: 4, population: 100, kept: 60 })!;
  assertClose(Array.from(w, (x) => x * 60), [100, 100 - 80 / 3, 20 + 80 / 3, 20], 1e-12);
  assertEquals(pyramidWeights(20, { layers: 1, population: 100, kept: 60 }), null);
  assertEquals(pyramidWeights(20, { layers: 4, population: 100, kept: 0 }), null);
});
