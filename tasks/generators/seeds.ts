/**
 * The seed spaces that keep training data apart from evaluation data by construction.
 *
 * A generated sample is fixed by (task, seed, index). Seeds are split in two disjoint ranges:
 * evaluation seeds are 0 … 999 999, training seeds 1 000 000 … 2 147 483 647. The split is
 * also salted into every sample's random stream, so even the same (task, index) under an
 * evaluation and a training seed draws unrelated streams. A request names its split and every
 * seed must lie in that split's range; anything else is an {@linkcode InputError}.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { hashString, mixSeeds } from "./rng.ts";

/** Which side of the wall a seed is on. */
export type SeedSplit = "eval" | "train";

/** The first training seed; evaluation seeds are below it. */
export const TRAIN_SEED_START = 1_000_000;

/** The largest seed (seeds are non-negative 31-bit integers). */
export const MAX_SEED = 2_147_483_647;

/** The inclusive range of seeds a split may use. */
export function seedRange(split: SeedSplit): [number, number] {
  return split === "eval" ? [0, TRAIN_SEED_START - 1] : [TRAIN_SEED_START, MAX_SEED];
}

/** The split a seed belongs to. */
export function seedSplit(seed: number): SeedSplit {
  return seed >= TRAIN_SEED_START ? "train" : "eval";
}

/**
 * Fail unless every seed is an integer in the range of `split`; `what` names the input in the
 * message (e.g. "--seeds").
 */
export function checkSeeds(seeds: readonly number[], split: SeedSplit, what = "seed"): void {
  const [lo, hi] = seedRange(split);
  for (const seed of seeds) {
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw new InputError(`${what}: ${seed} is not a seed (expected an integer in 0…${MAX_SEED})`);
    }
    if (seed < lo || seed > hi) {
      const other = seedSplit(seed);
      throw new InputError(
        `${what}: seed ${seed} belongs to the ${other === "eval" ? "evaluation" : "training"} ` +
          `seed space, not ${split === "eval" ? "evaluation" : "training"} ` +
          `(evaluation seeds are 0…${
            TRAIN_SEED_START - 1
          }, training seeds ${TRAIN_SEED_START}…${MAX_SEED}); ` +
          `train and eval data must not overlap`,
      );
    }
  }
}

const SPLIT_SALT: Record<SeedSplit, number> = {
  eval: hashString("evictbench/eval"),
  train: hashString("evictbench/train"),
};

/** The random seed of sample `index` of `task` under `seed` (its split salted in). */
export function sampleSeed(task: string, seed: number, index: number): number {
  return mixSeeds([SPLIT_SALT[seedSplit(seed)], hashString(task), seed >>> 0, index >>> 0]);
}

/** The id of a generated sample, e.g. "niah_single_1/eval/s0/i3". */
export function sampleId(task: string, seed: number, index: number): string {
  return `${task}/${seedSplit(seed)}/s${seed}/i${index}`;
}
