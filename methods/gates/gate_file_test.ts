/**
 * gates.safetensors: written gates read back bit for bit; a file for another model shape or
 * another set of layers, a truncated file, damaged metadata, a missing or misshapen tensor and
 * non-finite values are each one InputError line naming the file and the problem. A recorded
 * model_fingerprint must be the model's own unless overridden; stamping one into an older file
 * rewrites only the header's metadata, and a rerun changes nothing.
 */

import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { parseModelConfig } from "../../engine/config.ts";
import { tinyConfigJson } from "../../engine/random_model.ts";
import {
  checkpointFingerprint,
  openSafetensors,
  type TensorToWrite,
  writeSafetensors,
} from "../../engine/safetensors.ts";
import { gateDimsFor, gatedLayers, randomGates } from "./gate.ts";
import {
  checkGatesTrainedFor,
  MODEL_FINGERPRINT_KEY,
  readGateFile,
  stampGateFile,
  writeGateFile,
} from "./gate_file.ts";
import { withTinyModel } from "./testing.ts";

const qwen = parseModelConfig(tinyConfigJson("qwen3"));

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Rewrite a safetensors file through `edit` (tensors as F32, metadata editable). */
async function rewrite(
  path: string,
  edit: (t: Record<string, TensorToWrite>, m: Record<string, string>) => void,
): Promise<void> {
  const f = await openSafetensors(path);
  const tensors: Record<string, TensorToWrite> = {};
  for (const n of f.names()) {
    tensors[n] = { dtype: "F32", shape: f.info(n)!.shape, data: await f.readF32(n) };
  }
  const metadata = { ...f.metadata };
  f.close();
  edit(tensors, metadata);
  await writeSafetensors(path, tensors, { metadata });
}

Deno.test("gates round-trip through gates.safetensors with their metadata", async () => {
  await withDir(async (dir) => {
    const gates = randomGates(gateDimsFor(qwen), { layers: gatedLayers(qwen), seed: 5 });
    const path = `${dir}/gates.safetensors`;
    await writeGateFile(path, gates, { metadata: { source: "test" } });
    const back = await readGateFile(path, { config: qwen });
    assertEquals(back.gates, gates);
    assertEquals(back.metadata.layers, "0,1,2");
    assertEquals(back.metadata.gate_dim, "16");
    assertEquals(back.metadata.source, "test");
    assertEquals(back.extraTensors, []);
  });
});

Deno.test("a gate file for another model shape or layer set is refused by name", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/gates.safetensors`;
    await writeGateFile(path, randomGates(gateDimsFor(qwen), { layers: [0, 1, 2], seed: 1 }));
    const llama = parseModelConfig(tinyConfigJson("llama"));
    const e = await assertRejects(
      () => readGateFile(path, { config: llama, modelLabel: "models/tiny-llama" }),
      InputError,
      `${path}: gates are for hidden size 40, 2 KV heads, group 3, but models/tiny-llama has hidden size 40, 1 KV heads, group 5`,
    );
    assert(!e.message.includes("\n"));
    const deeper = parseModelConfig({
      ...tinyConfigJson("qwen3"),
      num_hidden_layers: 4,
      layer_types: new Array(4).fill("full_attention"),
    });
    await assertRejects(
      () => readGateFile(path, { config: deeper, modelLabel: "m" }),
      InputError,
      "gates cover layers [0,1,2], but m has 4 layers whose global-attention layers are [0,1,2,3]",
    );
  });
});

Deno.test("corrupt gate files are refused with one line naming the file", async () => {
  await withDir(async (dir) => {
    const gates = randomGates(gateDimsFor(qwen), { layers: [0, 1, 2], seed: 2 });
    const good = `${dir}/good.safetensors`;
    await writeGateFile(good, gates);
    const bytes = await Deno.readFile(good);
    const cases: [string, (path: string) => Promise<void>, string][] = [
      ["truncated", (p) => Deno.writeFile(p, bytes.subarray(0, bytes.length - 100)), "truncated?"],
      ["garbage", (p) => Deno.writeTextFile(p, "hello"), "too short for a safetensors header"],
      ["not gates", (p) => rewrite(p, (_, m) => delete m.format), "__metadata__.format is missing"],
      ["bad dim", (p) => rewrite(p, (_, m) => (m.gate_dim = "x")), "gate_dim must be a positive"],
      ["bad layers", (p) => rewrite(p, (_, m) => (m.layers = "2,1")), "__metadata__.layers"],
      [
        "missing tensor",
        (p) => rewrite(p, (t) => delete t["layers.1.k_base"]),
        "tensor layers.1.k_base is missing",
      ],
      [
        "misshapen tensor",
        (p) =>
          rewrite(
            p,
            (t) => (t["layers.0.b"] = { dtype: "F32", shape: [6], data: new Float32Array(6) }),
          ),
        "tensor layers.0.b has shape [6]; the metadata's dims need [2,3]",
      ],
      [
        "NaN",
        (p) => rewrite(p, (t) => ((t["layers.2.q_norm.weight"].data as Float32Array)[3] = NaN)),
        "layers.2.q_norm.weight holds a non-finite value at element 3",
      ],
    ];
    for (const [what, damage, mention] of cases) {
      const path = `${dir}/${what.replace(" ", "_")}.safetensors`;
      await Deno.copyFile(good, path);
      await damage(path);
      const e = await assertRejects(
        () => readGateFile(path, { config: qwen }),
        InputError,
        mention,
      );
      assert(e.message.startsWith(path), `${what}: names the file: ${e.message}`);
      assert(!e.message.includes("\n"), `${what}: one line`);
    }
    await assertRejects(
      () => readGateFile(`${dir}/none.safetensors`),
      InputError,
      "file not found",
    );
  });
});

Deno.test("checkGatesTrainedFor: the model's own fingerprint, none, or the override pass", async () => {
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (dir) => {
    const own = await checkpointFingerprint(dir);
    const label = "g.safetensors";
    await checkGatesTrainedFor({ [MODEL_FINGERPRINT_KEY]: own }, dir, { gateLabel: label });
    await checkGatesTrainedFor({}, dir, { gateLabel: label });
    const other = { [MODEL_FINGERPRINT_KEY]: "0123456789abcdef" };
    const e = await assertRejects(
      () => checkGatesTrainedFor(other, dir, { gateLabel: label }),
      InputError,
      `g.safetensors: gates were trained for checkpoint 0123456789abcdef, but ${dir} is checkpoint ${own}`,
    );
    assert(e.message.includes("allowOtherModel"), e.message);
    assert(!e.message.includes("\n"));
    await checkGatesTrainedFor(other, dir, { gateLabel: label, allowOtherModel: true });
  });
});

Deno.test("stampGateFile: records the model's fingerprint in the metadata alone; reruns are no-ops", async () => {
  await withTinyModel({ arch: "qwen3", seed: 1 }, async (dir) => {
    const path = `${dir}/gates.safetensors`;
    const gates = randomGates(gateDimsFor(qwen), { layers: gatedLayers(qwen), seed: 3 });
    await writeGateFile(path, gates, { metadata: { source: "older train-gate" } });
    const before = await Deno.readFile(path);
    const oldStart = await readDataStart(path);
    const model = { dir, config: qwen };

    const fingerprint = await checkpointFingerprint(dir);
    assertEquals(await stampGateFile(path, model), { fingerprint, changed: true });
    const after = await Deno.readFile(path);
    const back = await readGateFile(path, { config: qwen });
    assertEquals(back.gates, gates);
    assertEquals(back.metadata[MODEL_FINGERPRINT_KEY], fingerprint);
    assertEquals(back.metadata.source, "older train-gate");
    assertEquals(after.subarray(await readDataStart(path)), before.subarray(oldStart));

    // Rerun: nothing written.
    assertEquals(await stampGateFile(path, model), { fingerprint, changed: false });
    assertEquals(await Deno.readFile(path), after);

    // The same shape with other weights: the file already names another checkpoint.
    await withTinyModel({ arch: "qwen3", seed: 2 }, async (other) => {
      const e = await assertRejects(
        () => stampGateFile(path, { dir: other, config: qwen }),
        InputError,
        `${path}: __metadata__.model_fingerprint already names the checkpoint ${fingerprint}`,
      );
      assert(!e.message.includes("\n"));
    });
    assertEquals(await Deno.readFile(path), after);
    // Gates that do not fit the model are refused before anything is written.
    const llama = parseModelConfig(tinyConfigJson("llama"));
    await assertRejects(
      () => stampGateFile(path, { dir, config: llama }),
      InputError,
      "gates are for",
    );
  });
});

async function readDataStart(path: string): Promise<number> {
  const file = await openSafetensors(path);
  file.close();
  return file.dataStart;
}
