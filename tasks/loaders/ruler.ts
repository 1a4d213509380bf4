/**
 * RULER JSONL as its `prepare.py` writes it (`{index, input, outputs, length,
 * length_w_model_temp, answer_prefix, token_position_answer}` in `<task>/<subset>.jsonl`; older
 * versions keep the answer prefix at the end of `input` and have no `answer_prefix` field).
 *
 * The input is split as kvpress splits it (`benchmarks/ruler/create_huggingface_dataset.py`):
 * the context ends where the task's question begins (its last match), the answer prefix starts
 * at the task's answer pattern (or is the `answer_prefix` field). The question becomes the
 * query, the answer prefix its `answerPrefix`; references are `outputs`; the metric is
 * string_match_part for qa and string_match_all otherwise; new tokens are RULER's
 * `tokens_to_generate` (niah 128, vt 30, cwe 120, fwe 50, qa 32). The input opens with the
 * task's own instruction, so no instruction line is put before it (`instruction: ""`).
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { rulerMetricName } from "../metrics/mod.ts";
import type { Sample } from "../types.ts";
import { optionalField, parentName, readJsonl, stringField, stringListField } from "./rows.ts";

/** One RULER task family: where its question and answer prefix begin, and its output budget. */
export interface RulerFamily {
  /** Start of the question (the last match in the input). */
  question: RegExp;
  /** Start of the answer prefix, searched after the question. */
  answer: RegExp;
  /** RULER's `tokens_to_generate`. */
  maxNewTokens: number;
}

/** Question and answer anchors and generation lengths per RULER task family. */
export const RULER_FAMILIES: Readonly<Record<string, RulerFamily>> = {
  niah: {
    question: /What (?:is|are all) the special magic/g,
    answer: /The special magic/,
    maxNewTokens: 128,
  },
  vt: {
    question: /Question: Find all variables that are assigned the value/g,
    answer: /Answer:/,
    maxNewTokens: 30,
  },
  cwe: {
    question: /Question: What are the 10 most common words in the above list\?/g,
    answer: /Answer:/,
    maxNewTokens: 120,
  },
  fwe: {
    question: /Question: Do not provide any explanation\./g,
    answer: /Answer:/,
    maxNewTokens: 50,
  },
  qa: {
    question: /Answer the question based on the given documents\./g,
    answer: /Answer:/,
    maxNewTokens: 32,
  },
};

/** Options of {@linkcode loadRuler}. */
export interface RulerOptions {
  /** RULER task, e.g. "niah_single_1" (default: the folder holding the file). */
  task?: string;
  /** Keep the first `limit` samples. */
  limit?: number;
}

/**
 * Load one RULER task file.
 *
 * @example
 * ```ts
 * const samples = await loadRuler("ruler/4096/niah_single_1/validation.jsonl");
 * ```
 */
export async function loadRuler(path: string, options: RulerOptions = {}): Promise<Sample[]> {
  const task = options.task ?? parentName(path);
  const family = RULER_FAMILIES[task.split("_")[0]];
  if (family === undefined) {
    throw new InputError(
      `${path}: RULER task "${task}" is not of a known family; expected a name starting with ${
        Object.keys(RULER_FAMILIES).join(", ")
      } (pass options.task)`,
    );
  }
  const rows = await readJsonl(path);
  const samples: Sample[] = [];
  for (const row of rows) {
    if (options.limit !== undefined && samples.length >= options.limit) break;
    const input = stringField(row, "input");
    const outputs = stringListField(row, "outputs");
    const prefixField = optionalField(row, "answer_prefix");
    if (prefixField !== undefined && typeof prefixField !== "string") {
      throw new InputError(
        `${row.where}: field "answer_prefix" is a ${typeof prefixField}; expected a string`,
      );
    }
    const matches = [...input.matchAll(family.question)];
    if (matches.length === 0) {
      throw new InputError(
        `${row.where}: input has no "${family.question.source}"; expected RULER's ${task} template`,
      );
    }
    const start = matches.at(-1)!.index!;
    const context = input.slice(0, start);
    let question = input.slice(start);
    let answerPrefix = prefixField;
    if (answerPrefix === undefined) {
      const at = question.search(family.answer);
      if (at < 0) {
        throw new InputError(
          `${row.where}: input has no answer prefix "${family.answer.source}" after the question`,
        );
      }
      answerPrefix = question.slice(at);
      question = question.slice(0, at);
    }
    samples.push({
      id: `${task}/${samples.length}`,
      task,
      // The input opens with RULER's own task instruction, and kvpress feeds it as it is.
      instruction: "",
      context,
      queries: [{
        prompt: question.trimEnd(),
        answers: outputs,
        metric: rulerMetricName(task),
        maxNewTokens: family.maxNewTokens,
        answerPrefix,
        meta: { rawQuestion: question },
      }],
      meta: {
        source: "ruler",
        row: row.where,
        index: optionalField(row, "index"),
        length: optionalField(row, "length"),
      },
    });
  }
  return samples;
}
