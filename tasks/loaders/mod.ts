/**
 * Loaders for public benchmark files in their published formats. Each reads a local file and
 * returns {@linkcode Sample}s (questions that share a context grouped into one sample where the
 * benchmark does), with each query naming its metric from `tasks/metrics`. A malformed row or a
 * missing field is an `InputError` naming `file:line` (JSONL) or `file:row N` (Parquet, JSON).
 *
 * | loader | files |
 * | --- | --- |
 * | {@linkcode loadSquad} | SQuAD v1.1 JSON; rajpurkar/squad rows (JSONL, Parquet) |
 * | {@linkcode loadScbench} | SCBench-preprocessed `{set}.parquet` (or JSONL) |
 * | {@linkcode loadLongbench} | LongBench v1 `{dataset}.jsonl`, English tasks |
 * | {@linkcode loadRuler} | RULER `{task}/{subset}.jsonl` from prepare.py |
 * | {@linkcode loadMrcr} | openai/mrcr rows (Parquet, JSONL) |
 * | {@linkcode loadMath} | GSM8K, MATH-500, AIME rows (JSONL, Parquet) |
 *
 * @module
 */

export type { Query, Sample } from "../types.ts";
export {
  loadLongbench,
  LONGBENCH_MAX_NEW_TOKENS,
  LONGBENCH_PROMPTS,
  type LongbenchOptions,
  type LongbenchTruncation,
} from "./longbench.ts";
export {
  gsm8kFinalAnswer,
  GSM_REASON_PREFIX,
  loadMath,
  MATH_PROMPT_TEMPLATE,
  type MathOptions,
  type MathSet,
} from "./math.ts";
export { loadMrcr, type MrcrMessage, type MrcrOptions, renderMrcrPrompt } from "./mrcr.ts";
export { loadRuler, RULER_FAMILIES, type RulerFamily, type RulerOptions } from "./ruler.ts";
export {
  fastkvzipMaxNewTokens,
  loadScbench,
  SCBENCH_SETS,
  scbenchBaseSet,
  type ScbenchOptions,
} from "./scbench.ts";
export { loadSquad, type SquadOptions } from "./squad.ts";
export {
  formatOf,
  readJsonArray,
  readJsonl,
  readParquet,
  readRows,
  type Row,
  type RowFormat,
} from "./rows.ts";
