/**
 * The public-file loaders as registered tasks, so a sweep names them like any generator:
 * `{ "task": "squad_file", "options": { "path": "data/squad/train-v1.1.json", "n": 100 } }`.
 * Each takes the file's `path` (required) and `n`, the number of samples to keep; the loader's
 * other options pass through. Samples come in file order. `longbench_file`'s `maxLength` cuts
 * prompts longer than that many tokens of the model under test in the middle, as LongBench's
 * `pred.py` does (see longbench.ts).
 *
 * Each loader has its own `version` (see {@linkcode TaskAdapter.version}): bump it when its
 * parsing, prompts, answers or metric change, so a sweep's resume makes new cells instead of
 * reusing rows graded the old way. The file's content is part of the cells as well (its SHA-256).
 *
 * @module
 */

import { z } from "zod";
import type { AnyTaskAdapter, Sample, SuiteName, TaskAdapter } from "../types.ts";
import { loadLongbench } from "./longbench.ts";
import { loadMath } from "./math.ts";
import { loadMrcr } from "./mrcr.ts";
import { loadRuler } from "./ruler.ts";
import { loadScbench } from "./scbench.ts";
import { loadSquad } from "./squad.ts";

const base = {
  path: z.string().min(1).describe("the benchmark file (its published format)"),
  n: z.number().int().min(1).default(100).describe("samples to keep, in file order"),
};

const MAX_LENGTH = "expected a whole number of tokens ≥ 1, the model's max_length in LongBench's " +
  "model2maxlen.json such as 3500";

function fileTask<S extends z.ZodRawShape>(spec: {
  name: string;
  suite: SuiteName;
  description: string;
  /** The task's version: bump it when this loader's samples or grading change. */
  version: number;
  /** See {@linkcode TaskAdapter.averaged}; default true. */
  averaged?: boolean;
  extra: S;
  load: (
    options: z.infer<z.ZodObject<typeof base & S>>,
    env: Parameters<AnyTaskAdapter["samples"]>[1],
  ) => Promise<Sample[]>;
}): TaskAdapter<z.infer<z.ZodObject<typeof base & S>>> {
  const options = z.object({ ...base, ...spec.extra }).strict();
  return {
    name: spec.name,
    suite: spec.suite,
    description: spec.description,
    version: spec.version,
    source: "loader",
    fileOptions: ["path"],
    lengthControlled: false,
    ...(spec.averaged === false ? { averaged: false } : {}),
    options: options as never,
    async *samples(parsed, env) {
      yield* await spec.load(parsed as never, env);
    },
  };
}

/** Every loader as a task adapter. */
export const LOADER_TASKS: AnyTaskAdapter[] = [
  fileTask({
    name: "squad_file",
    suite: "long-context",
    version: 1,
    description: "SQuAD v1.1 JSON (or HF rows as JSONL/parquet), questions grouped by context",
    extra: {},
    load: (o) => loadSquad(o.path, { limit: o.n }),
  }),
  fileTask({
    name: "scbench_file",
    suite: "long-context",
    version: 1,
    description: "SCBench / SCBench-preprocessed parquet or JSONL: a context and several queries",
    extra: { dataset: z.string().optional().describe("set name, default from the file name") },
    load: (o) => loadScbench(o.path, { limit: o.n, dataset: o.dataset }),
  }),
  fileTask({
    name: "longbench_file",
    suite: "long-context",
    version: 2,
    description: "LongBench v1 JSONL (English tasks, with their prompts and lengths)",
    extra: {
      dataset: z.string().optional().describe("dataset name, default from the rows"),
      maxLength: z.number({ error: MAX_LENGTH }).int({ error: MAX_LENGTH })
        .min(1, { error: MAX_LENGTH }).optional()
        .describe(
          "LongBench's model2maxlen: a longer prompt is cut in the middle, as pred.py does; " +
            "absent: kept whole (a sweep refuses one beyond the model's window)",
        ),
    },
    load: (o, env) =>
      loadLongbench(o.path, {
        limit: o.n,
        dataset: o.dataset,
        truncation: o.maxLength === undefined
          ? undefined
          : { maxLength: o.maxLength, tokenizer: env.tokenizer },
      }),
  }),
  fileTask({
    name: "ruler_file",
    suite: "long-context",
    version: 2,
    description: "RULER JSONL as its prepare script writes it",
    extra: { rulerTask: z.string().optional().describe("RULER task, default from the folder") },
    load: (o) => loadRuler(o.path, { limit: o.n, task: o.rulerTask }),
  }),
  fileTask({
    name: "mrcr_file",
    suite: "long-context",
    version: 1,
    description: "OpenAI MRCR rows (messages, answer, random prefix), contexts up to maxTokens",
    // Reported on its own, as FastKVzip's parse.py does (spec §6.5-6.6).
    averaged: false,
    extra: { maxTokens: z.number().int().min(1).default(128_000) },
    load: (o, env) =>
      loadMrcr(o.path, {
        limit: o.n,
        maxTokens: o.maxTokens,
        countTokens: (text) => env.tokenizer.encode(text, { addSpecialTokens: false }).length,
      }),
  }),
  ...(["gsm8k", "math500", "aime"] as const).map((set) =>
    fileTask({
      name: `${set}_file`,
      suite: "math",
      version: 1,
      description: `${set} JSONL (chain-of-thought decoding, \\boxed{} answers)`,
      extra: {
        layout: z.enum(["reasoning", "fastkvzip-gsm"]).default("reasoning"),
        maxNewTokens: z.number().int().min(1).optional(),
      },
      load: (o, env) =>
        loadMath(o.path, set, {
          limit: o.n,
          layout: o.layout,
          maxNewTokens: o.maxNewTokens,
          countTokens: (text) => env.tokenizer.encode(text, { addSpecialTokens: false }).length,
        }),
    })
  ),
];
