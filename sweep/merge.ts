/**
 * Joining the run directories of a sharded sweep (`--shard i/n` on many machines) into one run:
 * every committed row once (rows are keyed by cell, sample and query), run.json recording the
 * shards, and the report rebuilt from the merged store.
 *
 * Every input is read and checked before anything is written: a run that cannot be read, holds
 * a duplicate row, or comes from another sweep (a config that differs in more than its output
 * directory and backend) stops the merge with one line, and `out` is left as it was.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { writeReport } from "../reports/render.ts";
import { canonicalJson } from "./runner.ts";
import {
  checkUniqueRows,
  readRunJson,
  readRunRows,
  type ResultRow,
  ResultsStore,
  writeJsonAtomic,
} from "./store.ts";

/** Config fields that may differ between the shards of one sweep. */
const PER_SHARD_FIELDS = new Set(["out", "backend", "$schema"]);

interface ShardInput {
  dir: string;
  rows: ResultRow[];
  /** The shard's run.json, or null when it has none. */
  runJson: Record<string, unknown> | null;
}

async function readShard(dir: string): Promise<ShardInput> {
  const rows = await readRunRows(dir);
  checkUniqueRows(rows, `${dir}/rows.csv`);
  return { dir, rows, runJson: await readRunJson(dir) };
}

/** The shard's config, when its run.json records one. */
function configOf(shard: ShardInput): Record<string, unknown> | null {
  const config = shard.runJson?.config;
  return config !== null && typeof config === "object" ? config as Record<string, unknown> : null;
}

/** The first config field, other than the per-shard ones, in which two configs differ. */
function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | null {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.find((k) =>
    !PER_SHARD_FIELDS.has(k) && canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null)
  ) ?? null;
}

/** Merge `runs` into `out`; rows already in `out` are kept, none is duplicated. */
export async function mergeRuns(
  out: string,
  runs: readonly string[],
): Promise<{ rows: number; report: string }> {
  if (runs.length === 0) throw new InputError("merge: give at least one run directory");
  const shards: ShardInput[] = [];
  for (const dir of runs) shards.push(await readShard(dir));
  const described = shards.filter((s) => configOf(s) !== null);
  for (const shard of described.slice(1)) {
    const field = firstDifference(configOf(described[0])!, configOf(shard)!);
    if (field !== null) {
      throw new InputError(
        `merge: ${shard.dir} is not a shard of the sweep in ${described[0].dir} (their configs ` +
          `differ in "${field}"); to add methods, budgets or tasks to a run, sweep again into ` +
          "its --out",
      );
    }
  }
  const store = await ResultsStore.open(out);
  for (const shard of shards) await store.append(shard.rows);
  await writeJsonAtomic(`${out}/run.json`, {
    mergedFrom: runs,
    shards: shards.map((s) => s.runJson ?? { dir: s.dir, runJson: null }),
  });
  const { html } = await writeReport(out);
  return { rows: store.size, report: html };
}
