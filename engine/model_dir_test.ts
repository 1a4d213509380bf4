import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { makeRandomModel } from "./random_model.ts";
import { openModelDir } from "./model_dir.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_md_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openModelDir: config, store, tokenizer; storedDtype comes from the tensors", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "qwen2", seed: 1, dtype: "F16" });
    // config.json claims float32 while the tensors are F16: the tensors win.
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...config, dtype: "float32" }));
    const model = await openModelDir(dir);
    try {
      assertEquals(model.dir, dir);
      assertEquals(model.config.architecture, "qwen2");
      assertEquals(model.config.storedDtype, "F16");
      // generation_config.json's eos list wins over config.json's single id.
      assertEquals(model.config.eosTokenIds, [288, 286]);
      assert(model.store.has("model.embed_tokens.weight"));
      assert(model.tokenizer !== null);
      assertEquals(model.requireTokenizer(), model.tokenizer);
      assertEquals(model.tokenizer.decode(model.tokenizer.encode("ok")), "ok");
    } finally {
      model.close();
    }
  });
});

Deno.test("openModelDir: a missing tokenizer.json does not block loading", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 1 });
    await Deno.remove(`${dir}/tokenizer.json`);
    const model = await openModelDir(dir);
    try {
      assertEquals(model.tokenizer, null);
      assertEquals(model.config.numLayers, 3);
      const error = assertThrows(() => model.requireTokenizer(), InputError);
      assertEquals(
        error.message,
        `${dir}: tokenizer.json is missing (expected a Hugging Face tokenizer file)`,
      );
    } finally {
      model.close();
    }
  });
});

Deno.test("openModelDir: config.json missing, not JSON, or unsupported", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 1 });
    const text = await Deno.readTextFile(`${dir}/config.json`);
    await Deno.remove(`${dir}/config.json`);
    await assertRejects(
      () => openModelDir(dir),
      InputError,
      `${dir}/config.json: file not found (expected a Hugging Face config.json)`,
    );
    await Deno.writeTextFile(`${dir}/config.json`, text.slice(0, 40));
    await assertRejects(() => openModelDir(dir), InputError, `${dir}/config.json: not valid JSON`);
    await Deno.writeTextFile(`${dir}/generation_config.json`, "{");
    await Deno.writeTextFile(`${dir}/config.json`, text);
    await assertRejects(
      () => openModelDir(dir),
      InputError,
      `${dir}/generation_config.json: not valid JSON`,
    );
    await Deno.remove(`${dir}/generation_config.json`);
    const model = await openModelDir(dir);
    model.close();
  });
  await assertRejects(
    () => openModelDir("/nonexistent/evictbench-model"),
    InputError,
    "/nonexistent/evictbench-model: model directory not found",
  );
});

Deno.test("openModelDir: unknown model_type and unsupported rope type (tiny model overrides)", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 1, overrides: { model_type: "mistral" } });
    await assertRejects(
      () => openModelDir(dir),
      InputError,
      `${dir}/config.json: model_type "mistral" is not supported; expected one of llama, qwen2, qwen3, gemma3_text`,
    );
  });
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, {
      arch: "qwen3",
      seed: 1,
      ropeScaling: { rope_type: "dynamic", factor: 2.0 },
    });
    await assertRejects(
      () => openModelDir(dir),
      InputError,
      `${dir}/config.json: rope_parameters.rope_type "dynamic" is not supported; expected one of default, linear, llama3, yarn`,
    );
  });
});
