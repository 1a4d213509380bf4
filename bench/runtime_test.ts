import { assert, assertEquals } from "../tests/assert.ts";
import type { ModelConfig } from "../engine/types.ts";
import { benchDecodeAttention, causalAttentionFlops, decodeKvBytes, latencyMs } from "./runtime.ts";
import { median, ReadBandwidthProbe } from "./ceilings.ts";

Deno.test("causal attention FLOPs count the pairs the mask allows, windows included", () => {
  const config = {
    numHeads: 2,
    headDim: 8,
    layers: [{ slidingWindow: null }, { slidingWindow: 2 }],
  } as unknown as ModelConfig;
  // 4 tokens: 1 + 2 + 3 + 4 = 10 pairs on the global layer, 1 + 2 + 2 + 2 = 7 in the window.
  assertEquals(causalAttentionFlops(config, 4), 2 * 2 * 2 * 8 * (10 + 7));
});

Deno.test("decode K/V bytes count what each layer holds, windows included", () => {
  const config = {
    numKvHeads: 2,
    headDim: 8,
    layers: [{ slidingWindow: null }, { slidingWindow: 4 }],
  } as unknown as ModelConfig;
  // 10 entries on the global layer, 4 in the window; keys and values of 2 heads × 8 floats.
  assertEquals(decodeKvBytes(config, 10), 2 * (10 + 4) * 2 * 8 * 4);
});

Deno.test("latencyMs runs `between` once after each timed iteration, not in warm-up", async () => {
  const order: string[] = [];
  const timed = await latencyMs(() => {
    order.push("run");
  }, {
    iterations: 3,
    warmup: 2,
    between: () => {
      order.push("between");
      return Promise.resolve();
    },
  });
  assertEquals(timed.samples, 3);
  // tinybench may run the task once more before timing (to see whether it is async).
  const tail = order.slice(-6);
  assertEquals(tail, ["run", "between", "run", "between", "run", "between"]);
  assertEquals(order.filter((x) => x === "between").length, 3);
});

Deno.test("the read-bandwidth probe streams its whole buffer through both probes", async () => {
  const probe = await ReadBandwidthProbe.create(2 ** 22, { threads: 1 });
  const sample = await probe.sample();
  await probe.release();
  assertEquals(probe.bytes, 2 ** 22);
  assert(sample.sumGbps > 0 && sample.gemvGbps > 0, "both probes timed");
  assertEquals(sample.gbps, Math.max(sample.sumGbps, sample.gemvGbps));
});

Deno.test("decode attention times the full and the evicted store in alternating rounds", async () => {
  let samples = 0;
  const probe = await ReadBandwidthProbe.create(2 ** 20, { threads: 1 });
  const counted = { sample: () => (samples++, probe.sample()) } as ReadBandwidthProbe;
  const a = await benchDecodeAttention({
    entries: 300,
    kvHeads: 2,
    group: 2,
    headDim: 8,
    keptRatio: 0.3,
    threads: 1,
    rounds: 3,
    iterations: 2,
    probe: counted,
  });
  await probe.release();
  assertEquals(a.roundRatios.length, 3);
  assertEquals(samples, 3, "the bandwidth is sampled after every round");
  assert(a.readGbps > 0, "the rounds' bandwidth is the probe's median");
  assertEquals(a.timeRatio, median(a.roundRatios));
  assert(a.fullMs > 0 && a.evictedMs > 0, "both stores timed");
  assertEquals(a.fullGbps, (2 * 300 * 2 * 8 * 4) / (a.fullMs * 1e6));
});
