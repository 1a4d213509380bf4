/**
 * The built-in generators, in listing order. A new generator is one new file and one line here.
 *
 * @module
 */

import type { GeneratorAdapter } from "./common.ts";
import { niahGenerators } from "./niah.ts";
import { cweGenerator, fweGenerator, vtGenerator } from "./aggregation.ts";
import { qa1Generator, qa2Generator } from "./qa.ts";
import { kvGenerator } from "./kv.ts";
import { codeCompletionGenerator, repoQaGenerator } from "./code.ts";
import { gsmSynthGenerator, mathSynthGenerator } from "./math.ts";

/** Every built-in generator. */
// deno-lint-ignore no-explicit-any
export const GENERATORS: readonly GeneratorAdapter<any>[] = [
  ...niahGenerators(),
  vtGenerator,
  cweGenerator,
  fweGenerator,
  qa1Generator,
  qa2Generator,
  kvGenerator,
  repoQaGenerator,
  codeCompletionGenerator,
  gsmSynthGenerator,
  mathSynthGenerator,
];

export type { GeneratorAdapter, GeneratorOptions, LengthOptions } from "./common.ts";
export { fitCount, fitPlan } from "./common.ts";
export {
  checkSeeds,
  sampleSeed,
  seedRange,
  type SeedSplit,
  seedSplit,
  TRAIN_SEED_START,
} from "./seeds.ts";
export { splitGsmQuestion } from "./math.ts";
