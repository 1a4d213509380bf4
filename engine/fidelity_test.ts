/**
 * Fidelity: logits agree with HF transformers' eager float32 forward on tiny random models of
 * every family (fixtures made by tools/make_fixtures.py; see tests/fixtures/hf/README.md).
 */

import { assert } from "../tests/assert.ts";
import { Model } from "./model.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { referenceAttention } from "../kernels/kv_store.ts";

const FIXTURES = new URL("../tests/fixtures/hf/", import.meta.url).pathname;
const TOLERANCE = 1e-4;

interface Golden {
  ids: number[];
  shape: [number, number];
}

const cases = [...Deno.readDirSync(FIXTURES)].filter((e) => e.isDirectory).map((e) => e.name)
  .sort();

/** A copy of a fixture whose config.json is the pre-v5 Hub layout (config.legacy.json). */
async function legacyCopy(name: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `evictbench-legacy-${name}-` });
  for (const entry of Deno.readDirSync(FIXTURES + name)) {
    if (entry.name === "config.json") continue;
    const target = entry.name === "config.legacy.json" ? "config.json" : entry.name;
    await Deno.copyFile(`${FIXTURES}${name}/${entry.name}`, `${dir}/${target}`);
  }
  return dir;
}

const variants = [
  { attention: "reference", layout: "v5" },
  { attention: "onnxruntime", layout: "v5" },
  { attention: "onnxruntime", layout: "legacy" },
] as const;

for (const name of cases) {
  for (const { attention, layout } of variants) {
    Deno.test(`fidelity vs HF transformers: ${name} (${attention} attention, ${layout} config)`, async () => {
      const dir = layout === "legacy" ? await legacyCopy(name) : FIXTURES + name;
      const golden: Golden = JSON.parse(await Deno.readTextFile(`${dir}/golden.json`));
      const bytes = await Deno.readFile(`${dir}/logits.f32`);
      const want = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const model = await Model.load(dir, {
        attention: attention === "onnxruntime" ? new OrtAttention() : referenceAttention,
      });
      const got = await model.forward(Int32Array.from(golden.ids), model.createCache(), {
        logits: "all",
      });
      assert(got.length === want.length, `expected ${want.length} logits, got ${got.length}`);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      console.log(
        `${name} ${attention} ${layout}: max abs err ${worst.toExponential(2)}, max abs logit ${
          scale.toFixed(2)
        }`,
      );
      assert(scale > 0.5, `fixture logits are too small to test anything (max |logit| ${scale})`);
      if (layout === "legacy") await Deno.remove(dir, { recursive: true });
      assert(
        worst <= TOLERANCE * Math.max(1, scale),
        `max |Δlogit| ${worst} exceeds ${TOLERANCE} × max(1, ${scale.toFixed(2)})`,
      );
    });
  }
}
