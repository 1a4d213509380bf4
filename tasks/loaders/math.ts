/**
 * Math problem sets in their published JSONL (or Parquet) rows:
 *
 * - GSM8K (`openai/gsm8k` "main": `question`, `answer` ending "#### N");
 * - MATH-500 (`HuggingFaceH4/MATH-500`: `problem`, `solution`, `answer`, `subject`, `level`,
 *   `unique_id`);
 * - AIME (`question`/`answer` as FastKVzip's aime24 file, or `problem`/`answer`, or
 *   `Problem`/`Answer`; integer answers become text).
 *
 * Two layouts:
 * - `reasoning` (the math suite, decode protocol; FastKVzip `math/run_math.py`): an empty
 *   context and no instruction line; the query is FastKVzip's math prompt around the problem,
 *   rendered as one user message with thinking on (`sample.prompt`, spec §4.5); graded with
 *   `math_equal` against the answer (GSM8K: the text after "####"); new tokens 16384 (MATH,
 *   GSM8K) or 32768 (AIME). A sweep caps the think block at new tokens − 2048 and then feeds
 *   the spec's forced-answer string (sweep/protocols.ts); its sampling (temperature 0.6, top-p
 *   0.95) is the sweep config's `sampling`, greedy when absent.
 * - `fastkvzip-gsm` (GSM8K only; spec §6.1 `gsm`, prefill protocol): the context is every
 *   ". "-separated sentence of the question but the last (joined, stripped, plus "."), the query
 *   the last sentence with the "reason" wording, graded with `include_score_gsm` against the
 *   full answer, 512 new tokens. FastKVzip skips questions whose context is under 72 tokens:
 *   pass `countTokens` to do the same.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { pyStrip } from "../metrics/py_text.ts";
import { REASONING_INSTRUCTION, type Sample } from "../types.ts";
import { firstTextField, optionalField, readRows, type Row, stringField } from "./rows.ts";

/** FastKVzip's math prompt (`math/run_math.py::prompt_template`), `{question}` to fill. */
export const MATH_PROMPT_TEMPLATE =
  "You are given a math problem.\n\nProblem: {question}\n\n You need to solve the problem step by step. First, you need to provide the chain-of-thought, then provide the final answer.\n\n Provide the final answer in the format: Final answer:  \\boxed{}";

/** FastKVzip's "reason" query wording (spec §6.2). */
export const GSM_REASON_PREFIX =
  "Reason and answer the question. You must say the answer in the last sentence beginning with 'The answer is'. Q: ";

/** Which math set a file holds. */
export type MathSet = "gsm8k" | "math500" | "aime";

/** Options of the math loaders. */
export interface MathOptions {
  /** Task name on the samples (default: the set name, or "gsm" for fastkvzip-gsm). */
  task?: string;
  /** Keep the first `limit` samples (after filtering). */
  limit?: number;
  /** `reasoning` (default) or, for GSM8K, `fastkvzip-gsm`. */
  layout?: "reasoning" | "fastkvzip-gsm";
  /** Generation length override. */
  maxNewTokens?: number;
  /** fastkvzip-gsm: token count of a context; contexts under 72 tokens are skipped. */
  countTokens?: (text: string) => number;
}

const DEFAULT_NEW_TOKENS: Record<MathSet, number> = { gsm8k: 16384, math500: 16384, aime: 32768 };

/** GSM8K's final answer: the text after "####" (the Python harness unpacks exactly two parts). */
export function gsm8kFinalAnswer(answer: string, where: string): string {
  const parts = answer.split("####");
  if (parts.length !== 2) {
    throw new InputError(
      `${where}: field "answer" has ${parts.length - 1} "####" markers; expected one`,
    );
  }
  return pyStrip(parts[1]);
}

function problemAndAnswer(set: MathSet, row: Row): [string, string] {
  if (set === "gsm8k") {
    return [stringField(row, "question"), gsm8kFinalAnswer(stringField(row, "answer"), row.where)];
  }
  if (set === "math500") return [stringField(row, "problem"), firstTextField(row, ["answer"])];
  return [
    firstTextField(row, ["question", "problem", "Question", "Problem"]),
    firstTextField(row, ["answer", "Answer"]),
  ];
}

function fastkvzipGsmSample(
  row: Row,
  task: string,
  index: number,
  options: MathOptions,
): Sample | null {
  const question = stringField(row, "question");
  const answer = stringField(row, "answer");
  const sentences = question.split(". ");
  const context = pyStrip(sentences.slice(0, -1).join(". ")) + ".";
  if (options.countTokens !== undefined && options.countTokens(context) < 72) return null;
  return {
    id: `${task}/${index}`,
    task,
    instruction: REASONING_INSTRUCTION,
    context,
    queries: [{
      prompt: GSM_REASON_PREFIX + pyStrip(sentences.at(-1)!),
      answers: [answer],
      metric: "include_score_gsm",
      maxNewTokens: options.maxNewTokens ?? 512,
    }],
    meta: { source: "gsm8k", row: row.where },
  };
}

/**
 * Load a math set.
 *
 * @example
 * ```ts
 * const aime = await loadMath("data/aime24.jsonl", "aime");
 * const gsm = await loadMath("data/gsm8k/test.jsonl", "gsm8k", { layout: "fastkvzip-gsm", limit: 100 });
 * ```
 */
export async function loadMath(
  path: string,
  set: MathSet,
  options: MathOptions = {},
): Promise<Sample[]> {
  const layout = options.layout ?? "reasoning";
  if (layout === "fastkvzip-gsm" && set !== "gsm8k") {
    throw new InputError(`layout "fastkvzip-gsm" is for gsm8k only, not ${set}`);
  }
  const task = options.task ?? (layout === "fastkvzip-gsm" ? "gsm" : set);
  const samples: Sample[] = [];
  for (const row of await readRows(path)) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    if (layout === "fastkvzip-gsm") {
      const sample = fastkvzipGsmSample(row, task, samples.length, options);
      if (sample !== null) samples.push(sample);
      continue;
    }
    const [problem, answer] = problemAndAnswer(set, row);
    samples.push({
      id: `${task}/${samples.length}`,
      task,
      instruction: "",
      context: "",
      queries: [{
        // A function, so "$$" or "$&" in a problem stays as written (a string is a pattern).
        prompt: MATH_PROMPT_TEMPLATE.replace("{question}", () => problem),
        answers: [answer],
        metric: "math_equal",
        maxNewTokens: options.maxNewTokens ?? DEFAULT_NEW_TOKENS[set],
      }],
      meta: {
        source: set,
        row: row.where,
        id: optionalField(row, "unique_id") ?? optionalField(row, "id") ?? optionalField(row, "ID"),
        level: optionalField(row, "level"),
        subject: optionalField(row, "subject"),
      },
      // Spec §4.5: one user message through the chat template with enable_thinking=True.
      prompt: { thinking: "on", systemPrompt: null },
    });
  }
  return samples;
}
