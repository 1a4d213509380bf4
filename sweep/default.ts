/**
 * The default sweep: what `deno task sweep` runs with no config. Methods full, gated, kvzip,
 * snapkv, h2o, streamingllm and random; kept ratios 1.0 … 0.1; small samples of each suite.
 *
 * The embedded default model is not in the repository yet, so until it is, the default sweep
 * runs on a small random Qwen3-architecture model (with random gates) that it writes under
 * .cache/: it exercises the whole pipeline, but its scores say nothing about the methods.
 *
 * @module
 */

import { makeRandomModel } from "../engine/random_model.ts";
import { parseModelConfig } from "../engine/config.ts";
import { gateDimsFor, gatedLayers, randomGates } from "../methods/gates/gate.ts";
import { DEFAULT_GATE_FILE, writeGateFile } from "../methods/gates/gate_file.ts";
import { DEFAULT_KEPT_RATIOS } from "./config.ts";

/** Where the stand-in model lives until the embedded model lands. */
export const STAND_IN_MODEL = new URL("../.cache/default-model/", import.meta.url).pathname;

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

/** Write the stand-in model (and its random gates) once; later calls reuse it. */
export async function ensureStandInModel(dir = STAND_IN_MODEL): Promise<string> {
  const made = await makeRandomModel(dir, {
    arch: "qwen3",
    seed: 7,
    overrides: {
      hidden_size: 64,
      intermediate_size: 160,
      num_hidden_layers: 4,
      max_position_embeddings: 8192,
    },
    reuse: true,
  });
  if (!made.reused) {
    const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
    const gates = randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 7 });
    await writeGateFile(`${dir}/${DEFAULT_GATE_FILE}`, gates);
  }
  return dir;
}

/** The default sweep's config (validated by the caller like any other). */
export async function defaultSweep(): Promise<Record<string, unknown>> {
  const model = await ensureStandInModel();
  return {
    models: [model],
    methods: [...DEFAULT_METHODS],
    budgets: [...DEFAULT_KEPT_RATIOS],
    tasks: [
      { task: "niah_single_1", n: 2, lengths: [512] },
      { task: "niah_multikey_1", n: 1, lengths: [512] },
      { task: "kv_retrieval", n: 1, lengths: [640] },
      { task: "vt", n: 1, lengths: [512] },
      { task: "repoqa", n: 1, lengths: [1280] },
      { task: "gsm_synth", n: 2 },
    ],
    protocol: "query-agnostic",
    out: "runs/default",
  };
}
