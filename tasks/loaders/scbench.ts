/**
 * SCBench in the layout FastKVzip publishes (`Jang-Hyun/SCBench-preprocessed`, one
 * `{name}.parquet` per set; JSONL rows of the same shape work too): `prompts[0]` is the
 * context, `prompts[1:]` the questions, `ground_truth[i]` the answer of question i (a list is
 * joined with ", "). Sets with extra grading inputs:
 *
 * - many_shot: the reference becomes the question's option line holding "(gold)", as
 *   FastKVzip's `parse_answer` does;
 * - repoqa / repoqa_and_kv: `lang`, `repo`, `func_name[i]`; every question's gold function is a
 *   needle of the repository (`meta.needles`), the gold name is `meta.funcName`;
 * - multi-task sets (repoqa_and_kv, summary_with_needles): `task[i]` picks each question's rule.
 *   A sample's score is the mean over its questions, as for every task here; FastKVzip scores a
 *   repoqa_and_kv sample as the mean of [its kv questions' mean, its repoqa pass@1], so where
 *   the two kinds are not asked equally often the weights differ.
 *
 * Questions are asked as "Q: {question}"; the metric follows FastKVzip's rules
 * ({@linkcode fastkvzipMetricName}) and the generation length its `set_gen_length`.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { fastkvzipMetricName } from "../metrics/mod.ts";
import { pyStrip } from "../metrics/py_text.ts";
import type { Query, Sample } from "../types.ts";
import { fileStem, listField, optionalField, readRows, type Row, stringListField } from "./rows.ts";

/** The SCBench sets FastKVzip knows (with _tiny, _short and _mid variants). */
export const SCBENCH_SETS: readonly string[] = [
  "many_shot",
  "mf",
  "repoqa",
  "choice_eng",
  "prefix_suffix",
  "summary",
  "qa_eng",
  "vt",
  "kv",
  "summary_with_needles",
  "repoqa_and_kv",
];

/** Options of {@linkcode loadScbench}. */
export interface ScbenchOptions {
  /** Set name, e.g. "scbench_kv_short" (default: the file name, as FastKVzip names files). */
  dataset?: string;
  /** Task name on the samples (default: the dataset). */
  task?: string;
  /** Keep the first `limit` samples. */
  limit?: number;
}

/** FastKVzip's `set_gen_length` (spec §6.2): new tokens per dataset name. */
export function fastkvzipMaxNewTokens(dataset: string): number {
  if (dataset.includes("needle") || dataset.includes("_mf")) return 48;
  if (dataset.includes("prefix_suffix")) return 128;
  if (dataset.includes("squad") || dataset.includes("summary")) return 256;
  if (dataset.includes("gsm") || dataset.includes("repoqa")) return 512;
  return 96;
}

/** FastKVzip's `check_scbench_name`: the base set of a dataset name, or an InputError. */
export function scbenchBaseSet(dataset: string): string {
  if (!dataset.startsWith("scbench_")) {
    throw new InputError(`SCBench dataset "${dataset}": expected a name starting with "scbench_"`);
  }
  let name = dataset.slice("scbench_".length);
  for (const tag of ["_tiny", "_short", "_mid"]) {
    if (name.includes(tag.slice(1))) {
      name = name.split(tag)[0];
      break;
    }
  }
  if (!SCBENCH_SETS.includes(name)) {
    throw new InputError(
      `SCBench dataset "${dataset}": unknown set "${name}"; expected one of ${
        SCBENCH_SETS.join(", ")
      }`,
    );
  }
  return name;
}

function groundTruth(row: Row, i: number, value: unknown): string {
  if (Array.isArray(value)) {
    if (!value.every((v) => typeof v === "string" || typeof v === "number")) {
      throw new InputError(`${row.where}: ground_truth[${i}] must hold strings`);
    }
    return value.map(String).join(", ");
  }
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    return value === true ? "True" : value === false ? "False" : String(value);
  }
  throw new InputError(
    `${row.where}: ground_truth[${i}] is ${
      value === null ? "null" : typeof value
    }; expected text or a list`,
  );
}

function manyShotOption(row: Row, i: number, question: string, gold: string): string {
  const lines = question.split("\n").filter((line) => line.includes(`(${gold})`));
  if (lines.length === 0) {
    throw new InputError(`${row.where}: question ${i + 1} has no option line with "(${gold})"`);
  }
  return pyStrip(lines[0]);
}

/**
 * Load an SCBench set.
 *
 * @example
 * ```ts
 * const samples = await loadScbench("data/scbench_kv.parquet");
 * samples[0].queries[0].metric; // "include_score"
 * ```
 */
export async function loadScbench(path: string, options: ScbenchOptions = {}): Promise<Sample[]> {
  const dataset = options.dataset ?? fileStem(path);
  const base = scbenchBaseSet(dataset);
  const task = options.task ?? dataset;
  const rows = await readRows(path);
  const samples: Sample[] = [];
  for (const row of rows) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    const prompts = stringListField(row, "prompts");
    if (prompts.length < 2) {
      throw new InputError(
        `${row.where}: field "prompts" has ${prompts.length} entries; expected a context and questions`,
      );
    }
    const truths = listField(row, "ground_truth");
    const questions = prompts.slice(1);
    if (truths.length !== questions.length) {
      throw new InputError(
        `${row.where}: ${questions.length} questions but ${truths.length} ground_truth entries`,
      );
    }
    const subtasks = optionalField(row, "task") === undefined
      ? undefined
      : stringListField(row, "task");
    if (subtasks !== undefined && subtasks.length !== questions.length) {
      throw new InputError(
        `${row.where}: ${questions.length} questions but ${subtasks.length} task entries`,
      );
    }
    const isRepoqa = base === "repoqa" || base === "repoqa_and_kv";
    // repoqa_and_kv may hold no name for its kv questions: those needles get "".
    const funcNames = isRepoqa
      ? listField(row, "func_name").map((name, i) => {
        if (name === null || name === undefined) return "";
        if (typeof name !== "string") {
          throw new InputError(
            `${row.where}: func_name[${i}] is a ${typeof name}; expected a string`,
          );
        }
        return name;
      })
      : [];
    if (isRepoqa && funcNames.length !== questions.length) {
      throw new InputError(
        `${row.where}: ${questions.length} questions but ${funcNames.length} func_name entries`,
      );
    }
    const answers = truths.map((t, i) => groundTruth(row, i, t));
    const needles = isRepoqa ? funcNames.map((name, i) => ({ name, code: answers[i] })) : undefined;
    const lang = isRepoqa ? optionalField(row, "lang") : undefined;
    const queries: Query[] = questions.map((question, i) => {
      const subtask = subtasks?.[i];
      const metric = fastkvzipMetricName(dataset, subtask);
      const reference = base === "many_shot"
        ? manyShotOption(row, i, question, answers[i])
        : answers[i];
      const meta: Record<string, unknown> = {};
      if (subtask !== undefined) meta.subtask = subtask;
      if (metric === "repoqa_score") {
        Object.assign(meta, {
          needles,
          funcName: funcNames[i],
          lang,
          repo: optionalField(row, "repo"),
        });
      }
      return {
        prompt: `Q: ${question}`,
        answers: [reference],
        metric,
        maxNewTokens: fastkvzipMaxNewTokens(dataset),
        meta,
      };
    });
    samples.push({
      id: `${task}/${samples.length}`,
      task,
      context: prompts[0],
      queries,
      meta: { source: "scbench", dataset, row: row.where },
    });
  }
  return samples;
}
