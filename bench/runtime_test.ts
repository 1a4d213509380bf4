import { assertEquals } from "../tests/assert.ts";
import type { ModelConfig } from "../engine/types.ts";
import { causalAttentionFlops } from "./runtime.ts";

Deno.test("causal attention FLOPs count the pairs the mask allows, windows included", () => {
  const config = {
    numHeads: 2,
    headDim: 8,
    layers: [{ slidingWindow: null }, { slidingWindow: 2 }],
  } as unknown as ModelConfig;
  // 4 tokens: 1 + 2 + 3 + 4 = 10 pairs on the global layer, 1 + 2 + 2 + 2 = 7 in the window.
  assertEquals(causalAttentionFlops(config, 4), 2 * 2 * 2 * 8 * (10 + 7));
});
