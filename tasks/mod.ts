/**
 * Tasks: the registry, the sample types, the prompt builder and the generators.
 *
 * @module
 */

export * from "./types.ts";
export {
  getSuite,
  getTask,
  listTasks,
  nearMatches,
  parseTaskOptions,
  registerTask,
  resolveTasks,
  taskAveraged,
  taskSamples,
} from "./registry.ts";
export {
  buildPrompt,
  DEFAULT_SYSTEM_PROMPT,
  EMPTY_THINK_BLOCK,
  promptFrame,
  promptIds,
  type PromptSegment,
  promptText,
  type QueryParts,
  type QueryPrompt,
  referenceCompletion,
  renderSamplePrompt,
  type SamplePrompt,
  samplePromptTokens,
} from "./prompt.ts";
export {
  checkSeeds,
  type GeneratorAdapter,
  type GeneratorOptions,
  GENERATORS,
  type LengthOptions,
  seedRange,
  type SeedSplit,
  seedSplit,
  splitGsmQuestion,
  TRAIN_SEED_START,
} from "./generators/mod.ts";
export { insertAtDepths, joinSentences, NoiseHaystack, ProseHaystack } from "./haystack.ts";
