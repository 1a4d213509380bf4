/**
 * Synthetic result rows for store, aggregation and report tests: every combination of the
 * given methods, budgets, tasks, samples and queries, with scores that fall as the budget does.
 *
 * @module
 */

import type { ResultRow } from "../sweep/store.ts";
import { seededRandom } from "../kernels/random.ts";

/** Rows for methods × budgets × tasks × samples × queries. */
export function syntheticRows(options: {
  methods?: string[];
  budgets?: number[];
  tasks?: string[];
  samples?: number;
  queries?: number;
  seed?: number;
} = {}): ResultRow[] {
  const methods = options.methods ?? ["full", "snapkv", "streamingllm"];
  const budgets = options.budgets ?? [1, 0.5, 0.3];
  const tasks = options.tasks ?? ["niah_single", "vt"];
  const rand = seededRandom(options.seed ?? 1);
  const rows: ResultRow[] = [];
  for (const method of methods) {
    for (const budget of method === "full" ? [1] : budgets) {
      for (const task of tasks) {
        const cell_id = `${method}|${budget}|${task}`;
        for (let s = 0; s < (options.samples ?? 5); s++) {
          for (let q = 0; q < (options.queries ?? 2); q++) {
            const quality = method === "full"
              ? 0.9
              : method === "snapkv"
              ? 0.9 * budget + 0.05
              : 0.8 * budget;
            rows.push({
              cell_id,
              model: "models/tiny",
              method,
              params: "{}",
              policy: "per-head",
              safeguard: NaN,
              protocol: "query-agnostic",
              suite: "long-context",
              task,
              task_options: '{"seed":0,"targetTokens":1024}',
              task_version: 1,
              task_data: "",
              budget_kind: "kept_ratio",
              budget,
              seed: 0,
              settings: "",
              sample_id: `${task}-${s}`,
              sample_meta: `{"depths":[${s % 2 === 0 ? 0.25 : 0.75}]}`,
              query_index: q,
              metric: "string_match_all",
              score: rand() < quality ? 1 : 0,
              kept_ratio_asked: budget,
              kept_ratio_achieved: budget,
              entries_kept: Math.round(1000 * budget),
              kv_bytes_held: Math.round(1e6 * budget),
              kv_bytes_full: 1e6,
              context_tokens: 1000,
              prompt_tokens: 1030,
              generated_tokens: 8,
              stop_reason: "eos",
              prediction: `answer "${s}", with a comma\nand a newline`,
              reference: JSON.stringify([`${s}`]),
              answer_nll: 1 - budget / 2,
              prefill_ms: 100 + 10 * rand(),
              decode_ms_per_token: 5 + rand(),
              scoring_ms: method === "snapkv" ? 3 : 0,
              selection_ms: method === "full" ? 0 : 1,
            });
          }
        }
      }
    }
  }
  return rows;
}
