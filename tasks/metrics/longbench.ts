/**
 * LongBench v1's English scorers (`LongBench/metrics.py`, `eval.py` at THUDM/LongBench 2e00731),
 * graded as its `scorer` does: the best score over the references, starting from 0, after
 * cutting the prediction to its first line (`prediction.lstrip('\n').split('\n')[0]`) for trec,
 * triviaqa, samsum and lsht. The loader marks those queries with `meta.firstLine = true`.
 *
 * Python's `\d` matches every Unicode decimal digit, so the number finders use `\p{Nd}`.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { type FuzzBackend, fuzzRatio } from "./levenshtein.ts";
import { normalizeSquadAnswer } from "./normalize.ts";
import { pyLstrip, pySplit } from "./py_text.ts";
import { rougeL } from "./rouge.ts";
import { bagOfWordsF1 } from "./scbench.ts";
import type { Metric, MetricContext } from "./types.ts";

const NUMBERS = /\p{Nd}+/gu;

/** `qa_f1_score`: token F1 of the SQuAD-normalised texts. */
export function qaF1Score(prediction: string, reference: string): number {
  return bagOfWordsF1(
    pySplit(normalizeSquadAnswer(prediction)),
    pySplit(normalizeSquadAnswer(reference)),
  );
}

/** `count_score`: the share of the numbers in the prediction that equal the reference. */
export function countScore(prediction: string, reference: string): number {
  const numbers = prediction.match(NUMBERS) ?? [];
  let right = 0;
  for (const number of numbers) if (number === reference) right++;
  return numbers.length === 0 ? 0.0 : right / numbers.length;
}

/** `retrieval_score`: like count_score, against the N of the reference's "Paragraph N". */
export function retrievalScore(prediction: string, reference: string): number {
  const match = /Paragraph (\p{Nd}+)/u.exec(reference);
  if (match === null) {
    throw new InputError(
      `retrieval_score: reference ${JSON.stringify(reference)} has no "Paragraph N"`,
    );
  }
  return countScore(prediction, match[1]);
}

/** `code_sim_score`: fuzz.ratio / 100 of the first line with no "`", "#" or "//". */
export function codeSimScore(
  prediction: string,
  reference: string,
  options: {
    backend?: FuzzBackend;
    /** Strip the chosen line's and the reference's surrounding whitespace (not LongBench's). */
    ignoreIndent?: boolean;
  } = {},
): number {
  let line = "";
  for (const candidate of pyLstrip(prediction, "\n").split("\n")) {
    if (!candidate.includes("`") && !candidate.includes("#") && !candidate.includes("//")) {
      line = candidate;
      break;
    }
  }
  if (options.ignoreIndent) return fuzzRatio(line.trim(), reference.trim(), options) / 100;
  return fuzzRatio(line, reference, options) / 100;
}

/**
 * `classification_score` with its two quirks kept: the class list is pruned while it is being
 * iterated (so the entry after a removed one is skipped, as Python's list iterator does), and
 * `if em_match_list != 0` is always true, so the difflib fallback never runs and a prediction
 * naming no class scores 0.
 */
export function classificationScore(
  prediction: string,
  reference: string,
  options: { allClasses: readonly string[] },
): number {
  const matches: string[] = [];
  for (const className of options.allClasses) {
    if (prediction.includes(className)) matches.push(className);
  }
  for (let index = 0; index < matches.length; index++) {
    const term = matches[index];
    if (reference.includes(term) && term !== reference) {
      matches.splice(matches.indexOf(term), 1);
    }
  }
  return matches.includes(reference) ? 1.0 / matches.length : 0.0;
}

function longbenchMetric(
  name: string,
  description: string,
  grade: (prediction: string, reference: string, context?: MetricContext) => number,
): Metric {
  return {
    name,
    source: "longbench",
    description,
    score(prediction: string, answers: readonly string[], context?: MetricContext): number {
      if (answers.length === 0) throw new InputError(`${name}: the query has no reference answer`);
      if (context?.meta?.firstLine === true) {
        prediction = pyLstrip(prediction, "\n").split("\n")[0];
      }
      let best = 0;
      for (const answer of answers) best = Math.max(best, grade(prediction, answer, context));
      return best;
    },
  };
}

function allClassesOf(context?: MetricContext): string[] {
  const classes = context?.meta?.allClasses;
  if (!Array.isArray(classes) || !classes.every((c) => typeof c === "string")) {
    throw new InputError(
      "classification_score: query meta.allClasses is missing; expected the dataset's " +
        "all_classes list of strings",
    );
  }
  return classes;
}

/** `qa_f1_score`. */
export const qaF1ScoreMetric: Metric = longbenchMetric(
  "qa_f1_score",
  "token F1 of SQuAD-normalised texts (LongBench QA); best over references",
  qaF1Score,
);

/** `rouge_score`. */
export const rougeScoreMetric: Metric = longbenchMetric(
  "rouge_score",
  "ROUGE-L F1 of the rouge 1.0.1 package (summary-level union LCS); best over references",
  rougeL,
);

/** `classification_score` (needs `meta.allClasses`). */
export const classificationScoreMetric: Metric = longbenchMetric(
  "classification_score",
  "1/|classes named| when the gold class is among the classes the prediction names (trec)",
  (p, r, c) => classificationScore(p, r, { allClasses: allClassesOf(c) }),
);

/** `retrieval_score`. */
export const retrievalScoreMetric: Metric = longbenchMetric(
  "retrieval_score",
  'share of the numbers in the prediction equal to the gold "Paragraph N" (passage_retrieval_en)',
  retrievalScore,
);

/** `count_score`. */
export const countScoreMetric: Metric = longbenchMetric(
  "count_score",
  "share of the numbers in the prediction equal to the gold count (passage_count)",
  countScore,
);

/** `code_sim_score` with python-Levenshtein's ratio (fuzzywuzzy[speedup], thefuzz). */
export const codeSimScoreMetric: Metric = longbenchMetric(
  "code_sim_score",
  "fuzz.ratio/100 (Levenshtein InDel ratio) of the first non-comment line (lcc, repobench-p)",
  (p, r) => codeSimScore(p, r, { backend: "levenshtein" }),
);

/**
 * `code_sim_score` with indentation not scored: the chosen line and the reference both lose
 * their surrounding whitespace. For the generated `code_completion` task, whose reference is
 * the next line's code: a model that writes the line indented as in the file (as a pretrained
 * model does) would otherwise lose a quarter of its score on a correct line.
 */
export const codeLineSimMetric: Metric = longbenchMetric(
  "code_line_sim",
  "code_sim_score with the line's and the reference's indentation stripped (code_completion)",
  (p, r) => codeSimScore(p, r, { backend: "levenshtein", ignoreIndent: true }),
);

/** `code_sim_score` as LongBench's own requirements install it: fuzzywuzzy on difflib. */
export const codeSimScoreDifflibMetric: Metric = longbenchMetric(
  "code_sim_score_difflib",
  "fuzz.ratio/100 on difflib's SequenceMatcher (fuzzywuzzy without python-Levenshtein)",
  (p, r) => codeSimScore(p, r, { backend: "difflib" }),
);

/** LongBench v1's metric per English dataset (`dataset2metric`). */
export const LONGBENCH_METRICS: Readonly<Record<string, string>> = {
  narrativeqa: "qa_f1_score",
  qasper: "qa_f1_score",
  multifieldqa_en: "qa_f1_score",
  hotpotqa: "qa_f1_score",
  "2wikimqa": "qa_f1_score",
  musique: "qa_f1_score",
  gov_report: "rouge_score",
  qmsum: "rouge_score",
  multi_news: "rouge_score",
  trec: "classification_score",
  triviaqa: "qa_f1_score",
  samsum: "rouge_score",
  passage_retrieval_en: "retrieval_score",
  passage_count: "count_score",
  lcc: "code_sim_score",
  "repobench-p": "code_sim_score",
};

/** Datasets whose predictions LongBench cuts to the first line before scoring. */
export const LONGBENCH_FIRST_LINE: ReadonlySet<string> = new Set([
  "trec",
  "triviaqa",
  "samsum",
  "lsht",
]);
