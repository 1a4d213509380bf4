/**
 * Opening a Hugging Face model directory: config.json (+ generation_config.json), the
 * safetensors checkpoint, and the tokenizer when there is one.
 *
 * @module
 */

import { firstLineOf, InputError } from "../errors.ts";
import { parseModelConfig } from "./config.ts";
import { joinPath, openWeightStore, type WeightStore } from "./safetensors.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import type { ModelConfig } from "./types.ts";

/** An opened model directory. Call `close()` to release the checkpoint files. */
export interface ModelDir {
  /** The directory as given. */
  dir: string;
  /** Normalised config; `storedDtype` comes from the checkpoint. */
  config: ModelConfig;
  /** The checkpoint's tensors, read on demand. */
  store: WeightStore;
  /**
   * The tokenizer, or null when tokenizer.json is missing or unusable (models can still run on
   * token ids); {@linkcode ModelDir.requireTokenizer} gives the reason.
   */
  tokenizer: TextTokenizer | null;
  /** The tokenizer, or the InputError explaining why there is none. */
  requireTokenizer(): TextTokenizer;
  /** Close the checkpoint files. */
  close(): void;
}

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw new InputError(`${path}: file not found (expected a Hugging Face config.json)`, {
        cause: error,
      });
    }
    throw new InputError(`${path}: cannot read (${firstLineOf(error)})`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path}: not valid JSON (${firstLineOf(error)})`, { cause: error });
  }
}

/**
 * Open a model directory. A missing or malformed config.json, or a missing/invalid checkpoint,
 * is an {@linkcode InputError}; a missing tokenizer is not (see `requireTokenizer`).
 */
export async function openModelDir(dir: string): Promise<ModelDir> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`${dir}: model directory not found`, { cause: error });
    }
    throw new InputError(`${dir}: cannot open (${firstLineOf(error)})`, { cause: error });
  }
  if (!stat.isDirectory) {
    throw new InputError(`${dir}: not a directory; expected a model directory`);
  }

  const configPath = joinPath(dir, "config.json");
  const generationPath = joinPath(dir, "generation_config.json");
  const configJson = await readJson(configPath, true);
  const generationConfig = await readJson(generationPath, false);
  // Parse once before opening the checkpoint so config errors come first.
  parseModelConfig(configJson, {
    path: configPath,
    generationConfig,
    generationConfigPath: generationPath,
  });
  const store = await openWeightStore(dir);
  let config: ModelConfig;
  try {
    config = parseModelConfig(configJson, {
      path: configPath,
      generationConfig,
      generationConfigPath: generationPath,
      storedDtype: store.storedDtype(),
    });
  } catch (error) {
    store.close();
    throw error;
  }
  let tokenizer: TextTokenizer | null = null;
  let tokenizerError: unknown = null;
  try {
    tokenizer = await loadTokenizer(dir);
  } catch (error) {
    if (!(error instanceof InputError)) {
      store.close();
      throw error;
    }
    tokenizerError = error;
  }
  return {
    dir,
    config,
    store,
    tokenizer,
    requireTokenizer(): TextTokenizer {
      if (tokenizer !== null) return tokenizer;
      throw tokenizerError;
    },
    close(): void {
      store.close();
    },
  };
}
