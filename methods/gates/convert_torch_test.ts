/**
 * The converter on fixtures made by torch itself (tools/make_gate_fixture.py): a tiny gate
 * checkpoint in the official layout converts to the dims, dtypes and values torch saved, and
 * the converted gates reproduce the scores torch computed; a checkpoint with code in it, a
 * corrupt archive and a gate for another model are refused with one-line errors.
 */

import { assert, assertClose, assertEquals, assertRejects } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { parseModelConfig } from "../../engine/config.ts";
import { tinyConfigJson } from "../../engine/random_model.ts";
import { convertTorchGates } from "./convert_torch.ts";
import { gateForward, GateScorer } from "./gate.ts";
import { readGateFile, writeGateFile } from "./gate_file.ts";
import { ZipArchive } from "./zip.ts";

const FIXTURES = new URL("../../tests/fixtures/gates/", import.meta.url).pathname;
const CHECKPOINT = `${FIXTURES}q3_dim16_sink16.pt`;

interface Golden {
  T: number;
  x: number[][];
  scores: number[][];
}

async function golden(): Promise<Golden> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURES}golden.json`));
}

Deno.test("an official-layout checkpoint converts with its dims, dtypes and curves", async () => {
  const { gates, dtypes, curves } = await convertTorchGates(CHECKPOINT);
  assertEquals(gates.dims, { hiddenSize: 40, numKvHeads: 2, group: 3, gateDim: 16, sinks: 16 });
  assertEquals(gates.layers.map((w) => w.layer), [0, 1, 2]);
  assertEquals(dtypes["q_proj.weight"], "BF16");
  assertEquals(dtypes["b"], "BF16");
  assertEquals(dtypes["k_base"], "F32");
  assertEquals(dtypes["q_norm.weight"], "F32");
  assertEquals(gates.layers[0].kBase.length, 2 * 16 * 16);
  assertEquals(gates.layers[0].bias.length, 2 * 3);
  assertEquals(Object.keys(curves).sort(), ["acc", "acc_train", "loss", "loss_train"]);
  // The fixture's curves: 0.5/(i+1) + 0.01·l, averaged over the 3 layers.
  assertClose(curves.loss, [0.51, 0.26, 0.5 / 3 + 0.01, 0.135], 1e-12);
});

Deno.test("converted gates reproduce the scores torch computed", async () => {
  const { gates } = await convertTorchGates(CHECKPOINT);
  const g = await golden();
  const scorer = await GateScorer.create(gates, { threads: 1 });
  try {
    for (const w of gates.layers) {
      const x = Float32Array.from(g.x[w.layer]);
      assertClose(gateForward({ dims: gates.dims, weights: w }, x), g.scores[w.layer], 2e-6);
      assertClose(await scorer.score(w.layer, x), g.scores[w.layer], 1e-5);
    }
  } finally {
    await scorer.release();
  }
});

Deno.test("converted gates round-trip through gates.safetensors, bf16 kept as bf16", async () => {
  const { gates, dtypes } = await convertTorchGates(CHECKPOINT, {
    config: parseModelConfig(tinyConfigJson("qwen3")),
  });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/gates.safetensors`;
    await writeGateFile(path, gates, { dtypes, metadata: { source: "q3_dim16_sink16.pt" } });
    const back = await readGateFile(path, { config: parseModelConfig(tinyConfigJson("qwen3")) });
    assertEquals(back.gates, gates);
    assertEquals(back.metadata.source, "q3_dim16_sink16.pt");
    const header = await Deno.readFile(path);
    assert(new TextDecoder().decode(header.subarray(0, 400)).includes('"BF16"'));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint with code in it is refused, naming the global", async () => {
  const error = await assertRejects(
    () => convertTorchGates(`${FIXTURES}malicious.pt`),
    InputError,
    "system",
  );
  assert(error.message.includes("code in it"), error.message);
  assert(!error.message.includes("\n"));
});

Deno.test("a gate checkpoint for another model shape is refused", async () => {
  const llama = parseModelConfig(tinyConfigJson("llama")); // D 40, 1 KV head, group 5, 3 layers
  await assertRejects(
    () => convertTorchGates(CHECKPOINT, { config: llama, modelLabel: "models/llama" }),
    InputError,
    "gates are for hidden size 40, 2 KV heads, group 3, but models/llama has hidden size 40, 1 KV heads, group 5",
  );
  const gemma = parseModelConfig(tinyConfigJson("gemma3")); // one global layer of five
  await assertRejects(
    () => convertTorchGates(CHECKPOINT, { config: gemma, modelLabel: "models/gemma" }),
    InputError,
    "holds gates for 3 layers, but models/gemma has 1 global-attention layers",
  );
});

Deno.test("corrupt and truncated archives are refused with one line", async () => {
  const bytes = await Deno.readFile(CHECKPOINT);
  const dir = await Deno.makeTempDir();
  try {
    // Flip one byte inside a storage's data: its CRC-32 no longer matches.
    const entry = ZipArchive.open(bytes, "fixture").entry("q3_dim16_sink16/data/2")!;
    const view = new DataView(bytes.buffer);
    const dataStart = entry.localOffset + 30 + view.getUint16(entry.localOffset + 26, true) +
      view.getUint16(entry.localOffset + 28, true);
    const flipped = bytes.slice();
    flipped[dataStart + 5] ^= 0xff;
    await Deno.writeFile(`${dir}/flipped.pt`, flipped);
    await assertRejects(
      () => convertTorchGates(`${dir}/flipped.pt`),
      InputError,
      "zip entry q3_dim16_sink16/data/2 fails its CRC-32 check",
    );

    await Deno.writeFile(`${dir}/truncated.pt`, bytes.subarray(0, bytes.length >> 1));
    await assertRejects(
      () => convertTorchGates(`${dir}/truncated.pt`),
      InputError,
      "not a zip archive",
    );
    await Deno.writeTextFile(`${dir}/text.pt`, "not a checkpoint at all, just some text\n");
    await assertRejects(() => convertTorchGates(`${dir}/text.pt`), InputError, "not a zip");
    await assertRejects(() => convertTorchGates(`${dir}/missing.pt`), InputError, "not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
