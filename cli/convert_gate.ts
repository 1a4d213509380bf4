/**
 * `evictbench convert-gate`: turn an officially released Fast KVzip gate checkpoint
 * (`q{G}_dim16_sink16.pt`, a torch pickle) into gates.safetensors. The pickle is read as data
 * only; one with code in it is refused. With --model, the gates are checked against the model
 * and take its gated layer indices (Gemma3: only the global layers).
 *
 * The output has no `model_fingerprint`: the pickle does not say which checkpoint its gates were
 * trained on, and --model is only the shape to check against, so `gated` accepts the file for
 * any model of that shape, as it does every file without one.
 *
 * @module
 */

import { openModelDir } from "../engine/model_dir.ts";
import type { ModelConfig } from "../engine/types.ts";
import { convertTorchGates } from "../methods/gates/convert_torch.ts";
import { writeGateFile } from "../methods/gates/gate_file.ts";
import { checkOutputPath } from "./output.ts";

/** Options of the convert-gate command, as commander parses them. */
export interface ConvertGateCommandOptions {
  in: string;
  out: string;
  model?: string;
}

/** Run the convert-gate command. */
export async function runConvertGateCommand(options: ConvertGateCommandOptions): Promise<void> {
  await checkOutputPath(options.out, "--out");
  let config: ModelConfig | undefined;
  if (options.model !== undefined) {
    const dir = await openModelDir(options.model);
    config = dir.config;
    dir.close();
  }
  const { gates, dtypes, curves } = await convertTorchGates(options.in, {
    config,
    modelLabel: options.model,
  });
  const metadata: Record<string, string> = { source: options.in.split("/").pop() ?? options.in };
  if (options.model !== undefined) metadata.model = options.model;
  if (Object.keys(curves).length > 0) metadata.training_curves = JSON.stringify(curves);
  await writeGateFile(options.out, gates, { dtypes, metadata });
  const { dims } = gates;
  console.log(
    `wrote ${options.out}: gates for layers [${gates.layers.map((w) => w.layer).join(",")}] ` +
      `(D=${dims.hiddenSize}, H=${dims.numKvHeads}, G=${dims.group}, d=${dims.gateDim}, S=${dims.sinks})`,
  );
}
