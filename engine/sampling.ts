/**
 * Choosing the next token: greedy (argmax), or sampling as Hugging Face's `generate` does with
 * `do_sample=True`: the logits divided by the temperature, then the top-k and top-p (nucleus)
 * filters in that order, then one draw from what is left, renormalised. The draws come from one
 * seeded stream per generation, so a seed gives the same completion on every machine (not the
 * completion torch's generator would give: the two streams differ).
 *
 * @module
 */

import { seededRandom } from "../kernels/random.ts";

/** Sampling settings: the math runs of Fast KVzip use temperature 0.6, top-p 0.95. */
export interface Sampling {
  /** Divides the logits; > 0. */
  temperature: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP; in (0, 1]. */
  topP: number;
  /** Keep only the topK most likely tokens first; 0 keeps all (HF's generation_config often sets 20 or 50). */
  topK?: number;
  /** Seed of the draws. */
  seed: number;
}

/** Index of the largest logit (the first one on ties, as torch.argmax does). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** A sampling setting that is out of range, named, or null when all are valid. */
export function samplingProblem(s: Sampling): string | null {
  if (!(s.temperature > 0 && Number.isFinite(s.temperature))) {
    return `temperature: expected a number > 0, got ${s.temperature}`;
  }
  if (!(s.topP > 0 && s.topP <= 1)) return `topP: expected a number in (0, 1], got ${s.topP}`;
  const k = s.topK ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) return `topK: expected a whole number ≥ 0, got ${k}`;
  if (!Number.isInteger(s.seed)) return `seed: expected a whole number, got ${s.seed}`;
  return null;
}

/**
 * Probabilities below this fraction of the largest are sorted only when the more likely ones do
 * not reach top-p (then every token is), so a step over a 150k vocabulary sorts the few tokens
 * that matter; the nucleus is the same as with a full sort.
 */
const CANDIDATE_FLOOR = 1e-7;

/**
 * A token chooser: argmax without `sampling`, else HF's temperature, top-k and top-p warpers
 * and one seeded draw per call.
 *
 * @example
 * ```ts
 * const choose = tokenChooser({ temperature: 0.6, topP: 0.95, seed: 0 });
 * const next = choose(logits);
 * ```
 */
export function tokenChooser(sampling?: Sampling): (logits: Float32Array) => number {
  if (sampling === undefined) return argmax;
  const problem = samplingProblem(sampling);
  if (problem !== null) throw new RangeError(`sampling: ${problem}`);
  const uniform = seededRandom(sampling.seed);
  return (logits) => draw(nucleus(logits, sampling), uniform());
}

/** The tokens sampling may draw, most likely first, with their unnormalised probabilities. */
export function nucleus(
  logits: Float32Array,
  sampling: Pick<Sampling, "temperature" | "topP" | "topK">,
): { ids: Int32Array; weights: Float64Array } {
  const V = logits.length;
  const best = logits[argmax(logits)];
  const weights = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) {
    weights[i] = Math.exp((logits[i] - best) / sampling.temperature);
    total += weights[i];
  }
  const byWeight = (ids: number[]) => ids.sort((a, b) => weights[b] - weights[a] || a - b);
  const above: number[] = [];
  let aboveMass = 0;
  for (let i = 0; i < V; i++) {
    if (weights[i] >= CANDIDATE_FLOOR) {
      above.push(i);
      aboveMass += weights[i];
    }
  }
  const topK = sampling.topK ?? 0;
  let order = aboveMass >= sampling.topP * total && (topK === 0 || above.length >= topK)
    ? byWeight(above)
    : byWeight(Array.from({ length: V }, (_, i) => i));
  if (topK > 0 && topK < V) {
    // HF's TopKLogitsWarper removes what is below the k-th largest: ties with it stay.
    let k = topK;
    while (k < order.length && weights[order[k]] === weights[order[topK - 1]]) k++;
    order = order.slice(0, Math.min(k, order.length));
    total = order.reduce((sum, i) => sum + weights[i], 0);
  }
  // HF's TopPLogitsWarper drops the tokens whose ascending cumulative probability stays at or
  // below 1 − topP: most likely first, that keeps tokens until their sum reaches topP.
  let kept = 0;
  let mass = 0;
  while (kept < order.length) {
    mass += weights[order[kept]];
    kept++;
    if (mass >= sampling.topP * total) break;
  }
  const ids = Int32Array.from(order.slice(0, kept));
  return { ids, weights: Float64Array.from(ids, (i) => weights[i]) };
}

/** The token that `u` ∈ [0, 1) falls on, in proportion to the weights. */
function draw(choice: { ids: Int32Array; weights: Float64Array }, u: number): number {
  let total = 0;
  for (const w of choice.weights) total += w;
  let target = u * total;
  for (let i = 0; i < choice.ids.length; i++) {
    target -= choice.weights[i];
    if (target < 0) return choice.ids[i];
  }
  return choice.ids[choice.ids.length - 1];
}
