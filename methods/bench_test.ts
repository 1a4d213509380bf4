/** The methods bench returns consistent numbers on a tiny model (a smoke test, not a benchmark). */

import { assert, assertEquals } from "../tests/assert.ts";
import { Model } from "../engine/model.ts";
import { type AttentionExecutor, referenceAttention } from "../kernels/kv_store.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import "./mod.ts";
import { benchMethods, median, TimedAttention, timeStatistics } from "./bench.ts";
import { withTinyModel } from "./testing.ts";

Deno.test("median: middle value, or the mean of the two middle ones", () => {
  assertEquals(median([3, 1, 2]), 2);
  assertEquals(median([4, 1, 3, 2]), 2.5);
});

Deno.test("TimedAttention takes the layouts its wrapped executor takes", () => {
  assertEquals(new TimedAttention(new OrtAttention()).headMajor, true);
  assertEquals(new TimedAttention(referenceAttention).headMajor, undefined);
});

Deno.test("benchMethods: interleaved runs per method, attention and taps split out", async () => {
  await withTinyModel({ arch: "qwen3", seed: 51 }, async (dir) => {
    const attention = new TimedAttention(referenceAttention);
    const model = await Model.load(dir, { attention, threads: 1 });
    const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 250);
    const result = await benchMethods(model, ids, {
      attention,
      methods: ["full", "h2o", "gated", "kvzip"],
      repeats: 2,
      chunkSize: 16,
      warmupTokens: 20,
    });
    assertEquals(result.full.runs.length, 2);
    assert(result.full.prefillMs > 0 && result.full.attentionMs > 0, JSON.stringify(result.full));
    assertEquals(result.methods.map((m) => m.method), ["full", "h2o", "gated", "kvzip"]);
    const [full, h2o, gated, kvzip] = result.methods;
    assertEquals(full.scoreMs, 0, "full never scores");
    assertEquals(full.selectMs, 0, "full never evicts");
    assert(h2o.attentionMs > 0 && h2o.selectMs >= 0 && h2o.runs.length === 2);
    assert(gated.observeMs > 0, "the gate runs in the taps");
    assert(gated.projectionMs > 0, "the gate's projections run in the layer graphs");
    assert(!gated.usesStatistics && h2o.usesStatistics, "only h2o asks attention for statistics");
    assertEquals(h2o.projectionMs, 0);
    assert(Number.isFinite(h2o.statisticsMs) && h2o.statisticsMs >= 0, `${h2o.statisticsMs}`);
    assertEquals(gated.statisticsMs, 0, "no call asked for statistics");
    assert(kvzip.scoreMs > 0 && kvzip.policy === "global", JSON.stringify(kvzip));
    for (const m of result.methods) assert(Number.isFinite(m.overhead), m.method);
  });
});

Deno.test("timeStatistics: replays each call with and without statistics, times its count", async () => {
  // An executor whose statistics cost a known 3 ms of busy time per call.
  const slowStats: AttentionExecutor = {
    async attend(segments, query, options) {
      if (options.stats?.columnSum) {
        const until = performance.now() + 3;
        while (performance.now() < until) { /* the statistics' cost */ }
      }
      return await referenceAttention.attend(segments, query, options);
    },
  };
  const call = {
    tokens: 4,
    lengths: [6, 5],
    group: 2,
    headDim: 8,
    options: { scale: 0.3, stats: { columnSum: true } },
    count: 7,
  };
  const ms = await timeStatistics(slowStats, [call], 3);
  assert(ms > 7 * 2.5 && ms < 7 * 6, `7 calls × 3 ms, measured ${ms.toFixed(1)} ms`);
  // A call whose statistics cost nothing measures (about) nothing.
  const free = await timeStatistics(referenceAttention, [call], 3);
  assert(free < 7 * 1, `${free.toFixed(2)} ms`);
});
