/**
 * `evictbench generate`: completion of a prompt, greedy or sampled, printed to stdout.
 *
 * @module
 */

import { generate } from "../engine/generate.ts";
import { Model } from "../engine/model.ts";
import { type Sampling, samplingProblem } from "../engine/sampling.ts";
import { InputError } from "../errors.ts";

/** Options of the generate command, as commander parses them. */
export interface GenerateCommandOptions {
  model: string;
  prompt: string;
  maxNewTokens: number;
  chat: boolean;
  stop?: string[];
  chunkSize?: number;
  threads?: number;
  /** Compute backend (default "auto"). */
  backend?: "auto" | "cpu" | "webgpu";
  /** Sample at this temperature instead of greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
}

/** The sampling the flags ask for, or undefined for greedy; a bad setting names its flag. */
function samplingOf(options: GenerateCommandOptions): Sampling | undefined {
  if (options.temperature === undefined) return undefined;
  const sampling = {
    temperature: options.temperature,
    topP: options.topP ?? 1,
    topK: options.topK ?? 0,
    seed: options.seed ?? 0,
  };
  const problem = samplingProblem(sampling);
  if (problem !== null) {
    const flag = { temperature: "--temperature", topP: "--top-p", topK: "--top-k", seed: "--seed" };
    const name = problem.slice(0, problem.indexOf(":")) as keyof typeof flag;
    throw new InputError(`${flag[name]}${problem.slice(problem.indexOf(":"))}`);
  }
  return sampling;
}

/** Run the generate command. */
export async function runGenerateCommand(options: GenerateCommandOptions): Promise<void> {
  const sampling = samplingOf(options);
  const model = await Model.load(options.model, {
    threads: options.threads,
    backend: options.backend ?? "auto",
  });
  const tokenizer = model.tokenizer();
  const prompt = options.chat
    ? tokenizer.applyChatTemplate([{ role: "user", content: options.prompt }], {
      addGenerationPrompt: true,
    })
    : options.prompt;
  const ids = Int32Array.from(tokenizer.encode(prompt, { addSpecialTokens: !options.chat }));
  // A model may emit ids past the tokenizer's vocabulary (padded embedding rows); like
  // transformers, decode them to nothing rather than failing.
  const known = (id: number) => tokenizer.token(id) !== null;
  const result = await generate(model, model.createCache(), ids, {
    maxNewTokens: options.maxNewTokens,
    stopStrings: options.stop,
    decode: (tokens) => tokenizer.decode(tokens.filter(known), { skipSpecialTokens: true }),
    chunkSize: options.chunkSize,
    sampling,
  });
  model.dispose();
  console.log(result.text);
  console.error(
    `[${ids.length} prompt tokens, ${result.tokens.length} generated, stop: ${result.stopReason}, prefill ${
      result.prefillMs.toFixed(0)
    } ms, decode ${result.decodeMsPerToken.toFixed(1)} ms/token]`,
  );
}
