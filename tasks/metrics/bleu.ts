/**
 * nltk's `sentence_bleu` (nltk 3.10.3, `nltk/translate/bleu_score.py`) with uniform 4-gram
 * weights and `SmoothingFunction().method4`, the similarity RepoQA uses.
 *
 * - modified precision p_n = clipped n-gram matches / max(1, hypothesis n-grams), n = 1…4;
 * - brevity penalty: 1 if the hypothesis is longer than the reference, 0 if it is empty, else
 *   exp(1 − r/c);
 * - no unigram match → 0;
 * - method4 (k = 5): the i-th zero precision (counting from 1) becomes
 *   (1 / (2^i · k / ln c)) / denominator, but only when c > 1 — with c ≤ 1 the zeros stay and are
 *   skipped in the sum below;
 * - BLEU = bp · exp(fsum(w_n · ln p_n for p_n > 0)).
 *
 * @module
 */

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = JSON.stringify(tokens.slice(i, i + n));
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

interface Precision {
  numerator: number;
  denominator: number;
}

function modifiedPrecision(
  reference: readonly string[],
  hypothesis: readonly string[],
  n: number,
): Precision {
  const counts = ngramCounts(hypothesis, n);
  const refCounts = ngramCounts(reference, n);
  let numerator = 0;
  let total = 0;
  for (const [ngram, count] of counts) {
    numerator += Math.min(count, refCounts.get(ngram) ?? 0);
    total += count;
  }
  return { numerator, denominator: Math.max(1, total) };
}

/** Python's `math.fsum`: the correctly rounded sum (Shewchuk's partials). */
export function fsum(values: Iterable<number>): number {
  const partials: number[] = [];
  for (let x of values) {
    let used = 0;
    for (const p of partials) {
      let y = p;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[used++] = lo;
      x = hi;
    }
    partials.length = used;
    partials.push(x);
  }
  let hi = 0;
  let n = partials.length;
  if (n > 0) {
    hi = partials[--n];
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = partials[--n];
      hi = x + y;
      const yr = hi - x;
      lo = y - yr;
      if (lo !== 0) break;
    }
    if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
      const y = lo * 2;
      const x = hi + y;
      const yr = x - hi;
      if (y === yr) hi = x;
    }
  }
  return hi;
}

/**
 * `sentence_bleu([reference], hypothesis, smoothing_function=SmoothingFunction().method4)`.
 *
 * @example
 * ```ts
 * sentenceBleu("def f ( x ) : return x".split(" "), "def f ( x ) : return x".split(" ")); // 1
 * ```
 */
export function sentenceBleu(reference: readonly string[], hypothesis: readonly string[]): number {
  const weights = [0.25, 0.25, 0.25, 0.25];
  const precisions = weights.map((_, i) => modifiedPrecision(reference, hypothesis, i + 1));
  const hypLen = hypothesis.length;
  const refLen = reference.length;
  const bp = hypLen > refLen ? 1 : hypLen === 0 ? 0 : Math.exp(1 - refLen / hypLen);
  if (precisions[0].numerator === 0) return 0;
  const k = 5;
  let incvnt = 1;
  const smoothed = precisions.map((p) => {
    if (p.numerator === 0 && hypLen > 1) {
      const numerator = 1 / ((2 ** incvnt * k) / Math.log(hypLen));
      incvnt++;
      return numerator / p.denominator;
    }
    return p.numerator / p.denominator;
  });
  const terms: number[] = [];
  for (let i = 0; i < weights.length; i++) {
    if (smoothed[i] > 0) terms.push(weights[i] * Math.log(smoothed[i]));
  }
  return bp * Math.exp(fsum(terms));
}
