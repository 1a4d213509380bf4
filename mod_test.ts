/**
 * The library entry: a sweep run from nothing but what mod.ts exports, as a user's script would
 * (config file → validated config → runSweep → rows → cells).
 */

import { assert, assertEquals } from "./tests/assert.ts";
import {
  aggregate,
  type CellSummary,
  makeRandomModel,
  readRunJson,
  readRunRows,
  readSweepConfig,
  type ResultRow,
  runSweep,
  type SweepConfig,
  type SweepSummary,
  validateSweepConfig,
} from "./mod.ts";

Deno.test("mod.ts runs a sweep from a config file and reads its rows and cells back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench-mod-" });
  try {
    await makeRandomModel(`${dir}/model`, {
      arch: "qwen3",
      seed: 5,
      overrides: { max_position_embeddings: 4096 },
    });
    const path = `${dir}/sweep.jsonc`;
    await Deno.writeTextFile(
      path,
      `{
        // The cheapest sweep: one sample, the full cache and one method at one budget.
        "models": ["${dir}/model"],
        "methods": ["full", "knorm"],
        "budgets": [0.5],
        "tasks": [{ "task": "niah_single_1", "n": 1, "lengths": [400] }],
        "out": "${dir}/run",
      }`,
    );
    const config: SweepConfig = validateSweepConfig(await readSweepConfig(path), path);
    assertEquals(config.protocol, "query-agnostic", "defaults are filled in");
    const summary: SweepSummary = await runSweep(config, { progress: false, report: false });
    assertEquals(summary.dir, `${dir}/run`);
    assertEquals(summary.report, null);
    const rows: ResultRow[] = await readRunRows(summary.dir);
    assertEquals(rows.length, summary.rowsWritten);
    assertEquals(new Set(rows.map((r) => r.method)), new Set(["full", "knorm"]));
    const cells: CellSummary[] = aggregate(rows).filter((c) => c.scope === "task");
    assertEquals(cells.map((c) => c.method).sort(), ["full", "knorm"]);
    assert(cells.every((c) => c.task === "niah_single_1"), JSON.stringify(cells));
    const runJson = await readRunJson(summary.dir);
    assertEquals((runJson?.config as SweepConfig).methods, config.methods);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
