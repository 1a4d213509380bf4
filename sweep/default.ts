/**
 * The default sweep: what `deno task sweep` runs with no config. Methods full, gated, kvzip,
 * snapkv, h2o, streamingllm and random; kept ratios 1.0 … 0.1; small samples of each suite at
 * 2048 tokens, on the embedded default model (models/organism-qwen3-10m, trained by
 * tools/organism, with its trained gates).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { DEFAULT_KEPT_RATIOS } from "./config.ts";

/** The embedded default model, committed with the repository. */
export const EMBEDDED_MODEL = new URL("../models/organism-qwen3-10m/", import.meta.url).pathname;

/** The methods of the default sweep. */
export const DEFAULT_METHODS = [
  "full",
  "gated",
  "kvzip",
  "snapkv",
  "h2o",
  "streamingllm",
  "random",
];

/** The embedded model's directory, or an InputError when the checkout lacks it. */
export async function embeddedModel(dir = EMBEDDED_MODEL): Promise<string> {
  for (const file of ["config.json", "model.safetensors", "tokenizer.json", "gates.safetensors"]) {
    try {
      await Deno.stat(`${dir}${file}`);
    } catch {
      throw new InputError(
        `${dir}${file}: the embedded default model is incomplete (expected the files a clone of the repository has)`,
      );
    }
  }
  return dir;
}

/** The default sweep's config (validated by the caller like any other). */
export async function defaultSweep(): Promise<Record<string, unknown>> {
  const model = await embeddedModel();
  return {
    models: [model],
    methods: [...DEFAULT_METHODS],
    budgets: [...DEFAULT_KEPT_RATIOS],
    tasks: [
      { task: "niah_single_2", n: 4, lengths: [2048] },
      { task: "niah_multikey_1", n: 4, lengths: [2048] },
      { task: "kv_retrieval", n: 2, lengths: [2048] },
      { task: "vt", n: 3, lengths: [2048] },
      { task: "repoqa", n: 2, lengths: [2048] },
      { task: "gsm_synth", n: 4 },
    ],
    protocol: "query-agnostic",
    out: "runs/default",
  };
}
