/**
 * `Levenshtein.ratio` and fuzzywuzzy's `fuzz.ratio`, which LongBench's `code_sim_score` calls.
 *
 * `Levenshtein.ratio(a, b)` (python-Levenshtein, and Levenshtein ≥ 0.20 on rapidfuzz) is the
 * normalised InDel similarity: `1 − (len(a) + len(b) − 2·LCS) / (len(a) + len(b))`, 1.0 for
 * two empty strings, over code points. It is *not* difflib's ratio: difflib matches greedy
 * longest blocks, InDel takes the true longest common subsequence.
 *
 * `fuzz.ratio` (fuzzywuzzy 0.18): 100 when the strings are equal, 0 when either is empty,
 * otherwise `int(round(100 · SequenceMatcher(None, a, b).ratio()))` with Python's half-to-even
 * rounding, where SequenceMatcher is python-Levenshtein's `StringMatcher` when that package is
 * installed and difflib's otherwise.
 *
 * @module
 */

import { sequenceRatio } from "./difflib.ts";
import { codePoints, pyRound } from "./py_text.ts";

/** Length of the longest common subsequence of two code-point arrays. */
function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length < b.length) [a, b] = [b, a];
  let prev = new Int32Array(b.length + 1);
  let curr = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      curr[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], curr[j - 1]);
    }
    [prev, curr] = [curr, prev];
  }
  return prev[b.length];
}

/**
 * `Levenshtein.ratio(a, b)`: normalised InDel similarity over code points.
 *
 * @example
 * ```ts
 * levenshteinRatio("kitten", "sitting"); // 8/13 ≈ 0.615
 * ```
 */
export function levenshteinRatio(a: string, b: string): number {
  const ca = codePoints(a);
  const cb = codePoints(b);
  const lensum = ca.length + cb.length;
  if (lensum === 0) return 1.0;
  const dist = lensum - 2 * lcsLength(ca, cb);
  return 1.0 - dist / lensum;
}

/** Which SequenceMatcher fuzzywuzzy runs on. */
export type FuzzBackend = "levenshtein" | "difflib";

/**
 * fuzzywuzzy `fuzz.ratio(a, b)`, an integer 0…100.
 *
 * @example
 * ```ts
 * fuzzRatio("return x", "return y"); // 88
 * ```
 */
export function fuzzRatio(a: string, b: string, options: { backend?: FuzzBackend } = {}): number {
  const backend = options.backend ?? "levenshtein";
  if (a === b) return 100;
  if (a.length === 0 || b.length === 0) return 0;
  const ratio = backend === "levenshtein" ? levenshteinRatio(a, b) : sequenceRatio(a, b);
  return pyRound(100 * ratio);
}
