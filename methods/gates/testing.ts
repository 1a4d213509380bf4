/**
 * Helpers shared by the gate tests.
 *
 * @module
 */

import { seededRandom } from "../../kernels/random.ts";
import { makeRandomModel, type RandomModelOptions } from "../../engine/random_model.ts";
import { parseModelConfig } from "../../engine/config.ts";
import { gateDimsFor, gatedLayers, randomGates } from "./gate.ts";
import { DEFAULT_GATE_FILE, writeGateFile } from "./gate_file.ts";

const WORDS = (
  "the gate keeps what the model will need again and drops the rest of the cache while " +
  "attention heads read keys values tokens from long context windows so memory stays small " +
  "when budgets shrink every layer scores its entries once"
).split(" ");

/** Seeded prose-like text of `words` words drawn from a small vocabulary. */
export function generatedText(seed: number, words: number): string {
  const uniform = seededRandom(seed);
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    const w = WORDS[Math.floor(uniform() * WORDS.length)];
    out.push(i % 11 === 10 ? `${w}.` : w);
  }
  return out.join(" ");
}

/** Write a tiny random model into a fresh temp dir, run `fn`, then remove the dir. */
export async function withTinyModel(
  options: RandomModelOptions,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_gates_test_" });
  try {
    await makeRandomModel(dir, options);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export { spearman } from "./heldout.ts";

/**
 * Write random gates for the model in `dir` to `dir`/gates.safetensors, so the `gated` method
 * runs on a random test model (e.g. in the conformance suite).
 */
export async function writeRandomGates(dir: string, seed = 0): Promise<void> {
  const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
  const gates = randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed });
  await writeGateFile(`${dir}/${DEFAULT_GATE_FILE}`, gates);
}
