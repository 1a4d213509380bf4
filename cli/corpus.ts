/**
 * `evictbench corpus`: write generated samples as text for training (the embedded model) or
 * inspection, one record per query: the full prompt in the tokenizer's format, then the
 * reference completion.
 *
 * Training data never overlaps evaluation data: seeds come from disjoint ranges per split
 * (tasks/generators/seeds.ts), `--split train` (the default) accepts only training seeds, and
 * `--split eval` only evaluation seeds.
 *
 * @module
 */

import { Command } from "commander";
import { InputError } from "../errors.ts";
import { loadTokenizer, type TextTokenizer } from "../engine/tokenizer.ts";
import { listTasks, parseTaskOptions, resolveTasks } from "../tasks/registry.ts";
import { buildPrompt, promptIds, promptText, referenceCompletion } from "../tasks/prompt.ts";
import type { AnyTaskAdapter, PromptOptions, Sample } from "../tasks/types.ts";
import { checkSeeds, MAX_SEED, seedRange, type SeedSplit } from "../tasks/generators/seeds.ts";
import { checkOutputPath, openOutputFile } from "./output.ts";
import { positiveInt } from "./options.ts";

/** Options of the corpus command, as commander parses them. */
export interface CorpusCommandOptions {
  tasks?: string[];
  model?: string;
  tokenizer?: string;
  split: string;
  seeds?: string;
  n: number;
  lengths?: string;
  format: string;
  out?: string;
  promptFormat: string;
  skipUnfit: boolean;
  list: boolean;
  withIds?: boolean;
}

/** One written record: one query of one sample. */
export interface CorpusRecord {
  id: string;
  task: string;
  suite: string;
  split: SeedSplit;
  seed: number;
  index: number;
  query: number;
  targetTokens: number | null;
  /** Tokens of the prompt's parts. */
  tokens: { prefix: number; context: number; query: number; postfix: number };
  prompt: string;
  /** The reference completion; `prompt + completion` is the training text. */
  completion: string;
  answers: string[];
  metric: string;
  /**
   * With `--with-ids`: the prompt's token ids exactly as evaluation feeds them (its parts
   * tokenized apart, then joined), and the completion's ids tokenized on its own.
   */
  ids?: { prompt: number[]; completion: number[] };
}

/** Most seeds one request may name. */
export const MAX_CORPUS_SEEDS = 100_000;

/**
 * Parse a seed list: comma-separated seeds and inclusive ranges, e.g.
 * "1000000-1000009,1000050". `flag` names the option in errors.
 */
export function parseSeedList(text: string, flag = "--seeds"): number[] {
  const seeds: number[] = [];
  for (const part of text.split(",").map((p) => p.trim())) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (m === null) {
      throw new InputError(`${flag}: "${part}" is not a seed or a range like 1000000-1000009`);
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new InputError(`${flag}: range ${part} ends before it starts`);
    if (hi > MAX_SEED) {
      throw new InputError(`${flag}: seed ${hi} is above the largest seed ${MAX_SEED}`);
    }
    if (seeds.length + (hi - lo + 1) > MAX_CORPUS_SEEDS) {
      throw new InputError(`${flag}: more than ${MAX_CORPUS_SEEDS} seeds requested`);
    }
    for (let s = lo; s <= hi; s++) seeds.push(s);
  }
  return [...new Set(seeds)];
}

/** Parse target lengths in tokens: "512,2048,4096" (also "4k", "8K"). */
export function parseLengthList(text: string, flag = "--lengths"): number[] {
  return text.split(",").map((p) => p.trim()).map((part) => {
    const m = part.match(/^(\d+)([kK])?$/);
    const n = m === null ? NaN : Number(m[1]) * (m[2] ? 1024 : 1);
    if (!Number.isInteger(n) || n < 32) {
      throw new InputError(
        `${flag}: "${part}" is not a length in tokens (an integer ≥ 32, or e.g. 4k)`,
      );
    }
    return n;
  });
}

/** The records of one sample, one per query. */
export function sampleRecords(
  sample: Sample,
  task: AnyTaskAdapter,
  tokenizer: TextTokenizer,
  prompt: PromptOptions,
  withIds = false,
): CorpusRecord[] {
  const meta = sample.meta;
  return sample.queries.map((query, q) => {
    const parts = buildPrompt(tokenizer, sample, { ...prompt, queryIndex: q });
    const text = promptText(parts);
    const completion = referenceCompletion(query);
    // After an answer prefix ("Answer:") the model's first token carries the space.
    const space = /\s$/.test(text) || /^\s/.test(completion) ? "" : " ";
    const record: CorpusRecord = {
      id: sample.id,
      task: sample.task,
      suite: task.suite,
      split: meta.split as SeedSplit,
      seed: meta.seed as number,
      index: meta.index as number,
      query: q,
      targetTokens: typeof meta.targetTokens === "number" ? meta.targetTokens : null,
      tokens: {
        prefix: parts.prefix.ids.length,
        context: parts.context.ids.length,
        query: parts.query.ids.length,
        postfix: parts.postfix.ids.length,
      },
      prompt: text,
      completion: space + completion,
      answers: query.answers,
      metric: query.metric,
    };
    if (withIds) {
      record.ids = {
        prompt: promptIds(parts),
        completion: tokenizer.encode(space + completion, { addSpecialTokens: false }),
      };
    }
    return record;
  });
}

function printTaskList(): void {
  let suite = "";
  for (const task of listTasks()) {
    if (task.suite !== suite) {
      suite = task.suite;
      console.log(`${suite}:`);
    }
    const kind = task.source === "generator"
      ? (task.lengthControlled ? "generator, length-fitted" : "generator")
      : task.source;
    console.log(`  ${task.name.padEnd(18)} ${task.description} [${kind}]`);
  }
}

/** Run the corpus command. */
export async function runCorpusCommand(options: CorpusCommandOptions): Promise<void> {
  if (options.list) {
    printTaskList();
    return;
  }
  if ((options.model === undefined) === (options.tokenizer === undefined)) {
    throw new InputError(
      "corpus: give exactly one of --model <dir> or --tokenizer <dir> (lengths are counted in its tokens)",
    );
  }
  if (options.split !== "train" && options.split !== "eval") {
    throw new InputError(`--split: expected "train" or "eval", got "${options.split}"`);
  }
  const split = options.split as SeedSplit;
  if (options.format !== "jsonl" && options.format !== "text") {
    throw new InputError(`--format: expected "jsonl" or "text", got "${options.format}"`);
  }
  if (!["auto", "chat", "plain"].includes(options.promptFormat)) {
    throw new InputError(
      `--prompt-format: expected "auto", "chat" or "plain", got "${options.promptFormat}"`,
    );
  }
  const tasks = resolveTasks(options.tasks ?? []);
  const loaders = tasks.filter((t) => t.source !== "generator");
  if (loaders.length > 0) {
    throw new InputError(
      `corpus: ${
        loaders.map((t) => t.name).join(", ")
      } read public benchmark files; the corpus holds generated tasks only`,
    );
  }
  const seeds = options.seeds === undefined ? [seedRange(split)[0]] : parseSeedList(options.seeds);
  // The wall between training and evaluation data: every seed must lie in the split's range.
  checkSeeds(seeds, split, "--seeds");
  const lengths = options.lengths === undefined ? [2048] : parseLengthList(options.lengths);
  const tokenizer = await loadTokenizer((options.model ?? options.tokenizer) as string);
  const prompt: PromptOptions = { format: options.promptFormat as PromptOptions["format"] };

  // Written beside the target and renamed at the end, so a failed run leaves no partial file.
  if (options.out !== undefined) await checkOutputPath(options.out, "--out");
  const partial = options.out === undefined ? null : `${options.out}.partial`;
  const file = partial === null ? null : await openOutputFile(partial, "--out");
  const encoder = new TextEncoder();
  const write = async (text: string) => {
    const bytes = encoder.encode(text);
    const sink = file ?? Deno.stdout;
    for (let off = 0; off < bytes.length;) off += await sink.write(bytes.subarray(off));
  };
  let records = 0;
  let samples = 0;
  try {
    for (const task of tasks) {
      lengthLoop: for (const length of task.lengthControlled ? lengths : [null]) {
        for (const seed of seeds) {
          const raw: Record<string, unknown> = { n: options.n, seed, split };
          if (length !== null) raw.targetTokens = length;
          const parsed = parseTaskOptions(task, raw);
          try {
            for await (const sample of task.samples(parsed, { tokenizer, prompt })) {
              samples++;
              for (
                const record of sampleRecords(
                  sample,
                  task,
                  tokenizer,
                  prompt,
                  options.withIds === true,
                )
              ) {
                records++;
                await write(
                  options.format === "jsonl"
                    ? JSON.stringify(record) + "\n"
                    : (records > 1 ? "\n\n" : "") + record.prompt + record.completion,
                );
              }
            }
          } catch (error) {
            if (
              options.skipUnfit && error instanceof InputError &&
              error.message.includes("too small")
            ) {
              console.error(`skipped: ${error.message}`);
              continue lengthLoop;
            }
            throw error;
          }
        }
      }
    }
    if (options.format === "text" && records > 0) await write("\n");
    file?.close();
    if (partial !== null) await Deno.rename(partial, options.out as string);
  } catch (error) {
    try {
      file?.close();
    } catch {
      // Already closed.
    }
    if (partial !== null) await Deno.remove(partial).catch(() => {});
    throw error;
  }
  console.error(
    `[corpus: ${records} records from ${samples} samples, ${tasks.length} task(s), split ${split}, seeds ${
      seeds[0]
    }${seeds.length > 1 ? `…(${seeds.length})` : ""}${
      options.out === undefined ? "" : `, written to ${options.out}`
    }]`,
  );
}

/**
 * The `corpus` command with its options, for the CLI and for the organism recipe's standalone
 * bundle (tools/organism/corpus_main.ts).
 */
export function corpusCommand(): Command {
  return new Command("corpus")
    .description("Write generated task samples (prompt + reference completion) as JSONL or text.")
    .option("--tasks <names...>", "tasks or suites (long-context, code, math)")
    .option("--model <dir>", "model directory whose tokenizer counts lengths")
    .option("--tokenizer <dir>", "tokenizer directory (instead of --model)")
    .option("--split <split>", "train (seeds ≥ 1000000) or eval (seeds < 1000000)", "train")
    .option("--seeds <list>", "seeds and ranges, e.g. 1000000-1000009 (default: the split's first)")
    .option("-n, --n <count>", "samples per task, seed and length", positiveInt("--n"), 10)
    .option("--lengths <list>", "target prompt lengths in tokens, e.g. 512,2048,4k (default 2048)")
    .option("--format <format>", "jsonl or text", "jsonl")
    .option("--prompt-format <format>", "auto, chat or plain", "auto")
    .option("--out <file>", "output file (default stdout)")
    .option("--skip-unfit", "skip a task at a length too short for it, with a warning", false)
    .option("--with-ids", "add each record's prompt and completion token ids (jsonl)", false)
    .option("--list", "list the registered tasks and exit", false)
    .action(runCorpusCommand);
}
