/** The bench helpers return consistent numbers on a tiny model (a smoke test, not a benchmark). */

import { assert, assertEquals } from "../tests/assert.ts";
import { Model } from "../engine/model.ts";
import { referenceAttention } from "../kernels/kv_store.ts";
import "./mod.ts";
import { timeKvzipCostRatio, timeScoringCost, timeSelection } from "./bench.ts";
import { withTinyModel } from "./testing.ts";

Deno.test("bench helpers: scoring cost per method, KVzip's cost ratio, selection per policy", async () => {
  await withTinyModel({ arch: "qwen3", seed: 51 }, async (dir) => {
    const model = await Model.load(dir, { attention: referenceAttention, threads: 1 });
    const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 250);
    const rows = await timeScoringCost(model, ids, ["full", "snapkv", "h2o"], { chunkSize: 16 });
    assertEquals(rows.map((r) => r.method), ["full", "snapkv", "h2o"]);
    for (const r of rows) assert(r.fullPrefillMs > 0 && r.costRatio > 0, JSON.stringify(r));
    assertEquals(rows[0].scoreMs, 0, "full never scores");
    const kvzip = await timeKvzipCostRatio(model, ids);
    assert(kvzip.scoreMs > 0 && kvzip.costRatio > 1, JSON.stringify(kvzip));
    const selection = await timeSelection(model, ids, { keptRatio: 0.5 });
    assertEquals(selection.length, 3);
    for (const s of selection) assert(s.entriesAfter < s.entriesBefore && s.selectMs >= 0);
  });
});
