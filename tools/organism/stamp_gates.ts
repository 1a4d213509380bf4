/**
 * Record in a model's gate file the checkpoint fingerprint of the model its gates were trained
 * on (`model_fingerprint`), for gate files trained before `deno task train-gate` wrote it. The
 * shipped `models/organism-qwen3-10m/gates.safetensors` was stamped this way:
 *
 *     deno run --allow-read --allow-write tools/organism/stamp_gates.ts [model dir] [gate file]
 *
 * Defaults: `models/organism-qwen3-10m` and its `gates.safetensors` (trained on that model by
 * `run.py --gates`). Only the header's metadata is rewritten; every tensor stays byte-identical.
 * Rerunnable: a file that already names the model is left as it is; one that names another is
 * refused. Stamp only gates known to be trained on that model: `gated` then refuses them for
 * any other checkpoint of the same shape.
 *
 * @module
 */

import { isInputError } from "../../errors.ts";
import { openModelDir } from "../../engine/model_dir.ts";
import { joinPath } from "../../engine/safetensors.ts";
import { DEFAULT_GATE_FILE, stampGateFile } from "../../methods/gates/gate_file.ts";

/** The model whose gates this script stamps when given no arguments. */
export const DEFAULT_MODEL_DIR = "models/organism-qwen3-10m";

if (import.meta.main) {
  const dir = Deno.args[0] ?? DEFAULT_MODEL_DIR;
  const path = Deno.args[1] ?? joinPath(dir, DEFAULT_GATE_FILE);
  try {
    const model = await openModelDir(dir);
    const config = model.config;
    model.close();
    const { fingerprint, changed } = await stampGateFile(path, { dir, config });
    console.log(
      changed
        ? `${path}: model_fingerprint ${fingerprint} (${dir}) written; tensors unchanged`
        : `${path}: already names ${dir} (${fingerprint}); nothing written`,
    );
  } catch (error) {
    if (!isInputError(error)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(error.exitCode);
  }
}
