/**
 * ROUGE-L F1 as the `rouge` package 1.0.1 (pltrdy/rouge) computes it, which both LongBench's
 * and FastKVzip's `rouge_score` call as `Rouge().get_scores([pred], [ref], avg=True)
 * ["rouge-l"]["f"]`, returning 0.0 on any exception.
 *
 * This is the package's *summary-level union-LCS* variant, not the textbook sentence LCS:
 * - each text is split into "sentences" on every "." (pieces of length 0 dropped, then each
 *   piece's whitespace collapsed with `" ".join(piece.split())`);
 * - words are the pieces of `sentence.split(" ")` (so a blank sentence contributes the word "");
 * - m and n are the numbers of *distinct* words in the reference and the prediction;
 * - for each reference sentence r and prediction sentence c the LCS is reconstructed (ties go
 *   left, as the package's `_recon` does), and the *set* of its words is added to one running
 *   union; the LCS count is the size of that union;
 * - R = lcs/m, P = lcs/n, F = 2·P·R / (P + R + 1e-8).
 *
 * A text with no sentence at all ("", "...") raises in the package, so the score is 0. One
 * difference: the package reconstructs the LCS recursively and so raises RecursionError (score
 * 0) when one sentence pair needs more than about 1000 steps; this port returns the real value.
 *
 * @module
 */

import { pySplit } from "./py_text.ts";

function sentences(text: string): string[] {
  return text.split(".").filter((piece) => piece.length > 0).map((piece) =>
    pySplit(piece).join(" ")
  );
}

function words(sentence: string): string[] {
  return sentence.split(" ");
}

/** The words of the LCS of `x` and `y` that the package's `_recon_lcs` picks, as a set. */
function lcsWords(x: readonly string[], y: readonly string[]): Set<string> {
  const n = x.length;
  const m = y.length;
  const width = m + 1;
  const table = new Int32Array((n + 1) * width);
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      table[i * width + j] = x[i - 1] === y[j - 1]
        ? table[(i - 1) * width + j - 1] + 1
        : Math.max(table[(i - 1) * width + j], table[i * width + j - 1]);
    }
  }
  const picked = new Set<string>();
  let i = n;
  let j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) {
      picked.add(x[i - 1]);
      i--;
      j--;
    } else if (table[(i - 1) * width + j] > table[i * width + j - 1]) {
      i--;
    } else {
      j--;
    }
  }
  return picked;
}

/**
 * ROUGE-L F1 of `prediction` against one `reference`, `rouge` 1.0.1 style (see module doc).
 *
 * @example
 * ```ts
 * rougeL("the cat sat on the mat", "the cat is on the mat"); // ≈ 0.8
 * ```
 */
export function rougeL(prediction: string, reference: string): number {
  const hyp = sentences(prediction);
  const ref = sentences(reference);
  if (hyp.length === 0 || ref.length === 0) return 0;
  const refWords = new Set(ref.flatMap(words));
  const hypWords = new Set(hyp.flatMap(words));
  const union = new Set<string>();
  for (const refSentence of ref) {
    const r = words(refSentence);
    for (const hypSentence of hyp) {
      for (const word of lcsWords(r, words(hypSentence))) union.add(word);
    }
  }
  const lcs = union.size;
  const recall = lcs / refWords.size;
  const precision = lcs / hypWords.size;
  return 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}
