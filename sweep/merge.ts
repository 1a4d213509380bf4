/**
 * Joining the run directories of a sharded sweep (`--shard i/n` on many machines) into one run:
 * every committed row once (rows are keyed by cell, sample and query), run.json recording the
 * shards, and the report rebuilt from the merged store.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { writeReport } from "../reports/render.ts";
import { readRunRows, ResultsStore, rowKey, writeJsonAtomic } from "./store.ts";

/** Merge `runs` into `out`; rows already in `out` are kept, none is duplicated. */
export async function mergeRuns(
  out: string,
  runs: readonly string[],
): Promise<{ rows: number; report: string }> {
  if (runs.length === 0) throw new InputError("merge: give at least one run directory");
  const store = await ResultsStore.open(out);
  const shards: unknown[] = [];
  for (const run of runs) {
    const rows = await readRunRows(run);
    const seen = new Set<string>();
    for (const row of rows) {
      const key = rowKey(row);
      if (seen.has(key)) {
        throw new InputError(`${run}/rows.csv: duplicate row ${key.replaceAll("\u0000", "/")}`);
      }
      seen.add(key);
    }
    await store.append(rows);
    try {
      shards.push(JSON.parse(await Deno.readTextFile(`${run}/run.json`)));
    } catch {
      shards.push({ dir: run, runJson: null });
    }
  }
  await writeJsonAtomic(`${out}/run.json`, { mergedFrom: runs, shards });
  const { html } = await writeReport(out);
  return { rows: store.size, report: html };
}
