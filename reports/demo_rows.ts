/**
 * Synthetic result rows shaped like a real default sweep — seven methods × the default kept
 * ratios × six tasks from the three suites — for the report's screenshot and browser test.
 * The numbers are made up: each method's score falls off along a logistic curve in the kept
 * ratio, steeper on retrieval tasks than on reasoning ones, with sampling noise.
 *
 * @module
 */

import { seededRandom } from "../kernels/random.ts";
import type { ResultRow } from "../sweep/store.ts";

/** Kept ratio at which each method keeps half of its full-cache score, on a sensitivity-1 task. */
const MIDPOINT: Record<string, number> = {
  full: 0,
  kvzip: 0.1,
  "expected-attention": 0.17,
  snapkv: 0.25,
  pyramidkv: 0.27,
  h2o: 0.34,
  streamingllm: 0.5,
};

/** Per task: suite, metric, full-cache accuracy and how sharply eviction hurts it. */
const TASKS: Record<string, { suite: string; metric: string; full: number; sensitivity: number }> =
  {
    niah_single_1: {
      suite: "long-context",
      metric: "string_match_all",
      full: 0.98,
      sensitivity: 1,
    },
    niah_multikey_2: {
      suite: "long-context",
      metric: "string_match_all",
      full: 0.9,
      sensitivity: 1.5,
    },
    vt: { suite: "long-context", metric: "string_match_all", full: 0.86, sensitivity: 1.2 },
    qa_1: { suite: "long-context", metric: "string_match_part", full: 0.62, sensitivity: 0.8 },
    repoqa: { suite: "code", metric: "bleu_similarity", full: 0.74, sensitivity: 1.1 },
    gsm_synth: { suite: "math", metric: "math_equal", full: 0.56, sensitivity: 0.6 },
  };

/** Extra scoring work per sample, ms (KVzip reconstructs the context: about two prefills). */
const SCORING_MS: Record<string, number> = {
  full: 0,
  kvzip: 1900,
  "expected-attention": 45,
  snapkv: 18,
  pyramidkv: 19,
  h2o: 26,
  streamingllm: 0,
};

function keptFraction(method: string, budget: number, sensitivity: number): number {
  if (method === "full" || budget >= 1) return 1;
  const mid = MIDPOINT[method] * sensitivity;
  const curve = (r: number) => 1 / (1 + Math.exp(-(r - mid) / 0.07));
  return curve(budget) / curve(1);
}

/** The default sweep's kept ratios (sweep/config.ts, not imported: it loads every method). */
export const DEMO_KEPT_RATIOS: readonly number[] = [1, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1];
/** The demo sweep's methods (`full` first). */
export const DEMO_METHODS: readonly string[] = Object.keys(MIDPOINT);
/** The six tasks of the demo sweep. */
export const DEMO_TASKS: readonly string[] = Object.keys(TASKS);

/**
 * Rows for every method at every kept ratio (`full` at 1 only) on every task, `samples`
 * samples each, one query per sample.
 */
export function sweepLikeRows(options: { samples?: number; seed?: number } = {}): ResultRow[] {
  const samples = options.samples ?? 24;
  const rand = seededRandom(options.seed ?? 7);
  const contextTokens = 4096;
  const fullBytes = 2 * 24 * 2 * 64 * 2 * contextTokens; // K and V, 24 layers, 2 KV heads, f16
  const rows: ResultRow[] = [];
  for (const method of DEMO_METHODS) {
    for (const budget of method === "full" ? [1] : DEMO_KEPT_RATIOS) {
      for (const [task, t] of Object.entries(TASKS)) {
        const p = t.full * keptFraction(method, budget, t.sensitivity);
        const cell_id = `synthetic|${method}|${budget}|${task}`;
        for (let s = 0; s < samples; s++) {
          const score = t.metric === "string_match_all" || t.metric === "math_equal"
            ? (rand() < p ? 1 : 0)
            : Math.min(1, Math.max(0, p + 0.25 * (rand() - 0.5)));
          const kept = method === "full" ? contextTokens : Math.round(budget * contextTokens);
          rows.push({
            cell_id,
            model: "synthetic/qwen2.5-0.5b",
            method,
            params: "{}",
            policy: "per-head",
            safeguard: NaN,
            protocol: "query-agnostic",
            suite: t.suite,
            task,
            task_options: `{"targetTokens":${contextTokens}}`,
            task_version: 1,
            task_data: "",
            budget_kind: "kept_ratio",
            budget,
            seed: 0,
            settings: "",
            sample_id: `${task}-${s}`,
            sample_meta: "{}",
            query_index: 0,
            metric: t.metric,
            score,
            kept_ratio_asked: budget,
            kept_ratio_achieved: kept / contextTokens,
            entries_kept: kept * 24 * 2,
            kv_bytes_held: Math.round(fullBytes * kept / contextTokens),
            kv_bytes_full: fullBytes,
            context_tokens: contextTokens,
            prompt_tokens: contextTokens + 60,
            generated_tokens: 12,
            stop_reason: "eos",
            prediction: "synthetic",
            reference: JSON.stringify(["synthetic"]),
            answer_nll: 0.5 + (1 - score) * 2,
            prefill_ms: 850 + 120 * rand(),
            decode_ms_per_token: 18 + 14 * (kept / contextTokens) + 2 * rand(),
            scoring_ms: SCORING_MS[method] * (0.9 + 0.2 * rand()),
            selection_ms: method === "full" ? 0 : 6 + 4 * budget + rand(),
          });
        }
      }
    }
  }
  return rows;
}
