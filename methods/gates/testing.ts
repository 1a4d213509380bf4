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

/** Ranks of `values` (0-based, ties share their mean rank). */
function ranks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[a] - values[b]);
  const out = new Float64Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1]] === values[order[i]]) j++;
    for (let k = i; k <= j; k++) out[order[k]] = (i + j) / 2;
    i = j + 1;
  }
  return out;
}

/** Spearman rank correlation of two equally long series. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += ra[i] / n;
    mb += rb[i] / n;
  }
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (ra[i] - ma) * (rb[i] - mb);
    aa += (ra[i] - ma) ** 2;
    bb += (rb[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/**
 * Write random gates for the model in `dir` to `dir`/gates.safetensors, so the `gated` method
 * runs on a random test model (e.g. in the conformance suite).
 */
export async function writeRandomGates(dir: string, seed = 0): Promise<void> {
  const config = parseModelConfig(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
  const gates = randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed });
  await writeGateFile(`${dir}/${DEFAULT_GATE_FILE}`, gates);
}
