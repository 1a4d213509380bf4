/**
 * `evictbench generate`: greedy completion of a prompt, printed to stdout.
 *
 * @module
 */

import { generate } from "../engine/generate.ts";
import { Model } from "../engine/model.ts";

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
}

/** Run the generate command. */
export async function runGenerateCommand(options: GenerateCommandOptions): Promise<void> {
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
  });
  model.dispose();
  console.log(result.text);
  console.error(
    `[${ids.length} prompt tokens, ${result.tokens.length} generated, stop: ${result.stopReason}, prefill ${
      result.prefillMs.toFixed(0)
    } ms, decode ${result.decodeMsPerToken.toFixed(1)} ms/token]`,
  );
}
