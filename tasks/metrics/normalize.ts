/**
 * Answer normalisation as the benchmarks' scorers do it.
 *
 * - {@linkcode normalizeAnswer}: SCBench/MInference (and FastKVzip's `results/metric.py`):
 *   lowercase, drop `string.punctuation`, replace the whole words a/an/the by a space, collapse
 *   whitespace, then map the whole words zero…nine to 0…9.
 * - {@linkcode normalizeSquadAnswer}: SQuAD v1.1's `normalize_answer`, which LongBench's
 *   `qa_f1_score` uses: the same without the number words.
 *
 * Word boundaries are Python's (Unicode `\w`), so "théâtre" keeps its "the"-free letters and
 * "l'an" loses "an" only once its apostrophe has gone with the punctuation.
 *
 * @module
 */

import { isAsciiPunctuation, PY_WORD_CLASS, pyLower, pySplit } from "./py_text.ts";

const ARTICLES = new RegExp(`(?<![${PY_WORD_CLASS}])(?:a|an|the)(?![${PY_WORD_CLASS}])`, "gu");

const NUMBER_WORDS: Record<string, string> = {
  zero: "0",
  one: "1",
  two: "2",
  three: "3",
  four: "4",
  five: "5",
  six: "6",
  seven: "7",
  eight: "8",
  nine: "9",
};

const NUMBER_WORD_PATTERN = new RegExp(
  `(?<![${PY_WORD_CLASS}])(?:${Object.keys(NUMBER_WORDS).join("|")})(?![${PY_WORD_CLASS}])`,
  "gu",
);

function removePunctuation(text: string): string {
  let out = "";
  for (const ch of text) if (!isAsciiPunctuation(ch)) out += ch;
  return out;
}

function removeArticles(text: string): string {
  return text.replace(ARTICLES, " ");
}

function whiteSpaceFix(text: string): string {
  return pySplit(text).join(" ");
}

/**
 * SQuAD's `normalize_answer` (LongBench `qa_f1_score`): lower, punctuation, articles,
 * whitespace.
 *
 * @example
 * ```ts
 * normalizeSquadAnswer("The  Eiffel Tower!"); // "eiffel tower"
 * ```
 */
export function normalizeSquadAnswer(s: string): string {
  return whiteSpaceFix(removeArticles(removePunctuation(pyLower(s))));
}

/**
 * SCBench/MInference `normalize_answer`: SQuAD's steps, then zero…nine → 0…9.
 *
 * @example
 * ```ts
 * normalizeAnswer("Three apples, and an Orange."); // "3 apples and orange"
 * ```
 */
export function normalizeAnswer(s: string): string {
  return normalizeSquadAnswer(s).replace(NUMBER_WORD_PATTERN, (word) => NUMBER_WORDS[word]);
}
