/**
 * The plugin template (methods/_template.ts, KeyDiff) works as docs/methods.md says: once
 * imported it is registered, its scores are −cos(k, mean unit key), and it passes the
 * conformance suite.
 */

import { assertClose } from "../tests/assert.ts";
import "./mod.ts";
import { keydiff } from "./_template.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import { cpuBackend, defineConformanceTests } from "./conformance.ts";
import { getMethod } from "./registry.ts";
import { handConfig, handContext, positions, storeFor } from "./testing.ts";

Deno.test("template: keydiff scores −cos(k, mean of unit keys)", async () => {
  getMethod("keydiff");
  const config = handConfig({ layers: 1, kvHeads: 1, group: 1, headDim: 2 });
  const cache = storeFor(config);
  const k = Float32Array.of(1, 0, 0, 2, 3, 3);
  cache.append(0, k, k, positions(0, 3));
  const s = await keydiff.createScorer({ epsilon: 0 }, handContext(cache, config)).score({
    observed: { start: 0, end: 3 },
    range: { start: 0, end: 3 },
    budget: { keptRatio: 0.5 },
    keptPerHead: 1,
  });
  const r = Math.SQRT1_2;
  const mean = [(1 + 0 + r) / 3, (0 + 1 + r) / 3];
  const m = Math.hypot(mean[0], mean[1]);
  assertClose(s[0][0], [-mean[0] / m, -mean[1] / m, -(r * mean[0] + r * mean[1]) / m], 1e-6);
});

defineConformanceTests(cpuBackend("reference", () => referenceAttention), {
  archs: ["qwen3", "gemma3"],
  methods: ["keydiff"],
});
