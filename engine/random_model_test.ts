import { assert, assertAlmostEquals, assertEquals } from "../tests/assert.ts";
import { loadTokenizer } from "./tokenizer.ts";
import { openSafetensors } from "./safetensors.ts";
import {
  byteLevelAlphabet,
  makeRandomModel,
  TINY_SPECIAL_TOKENS,
  TINY_TOKENIZER_SIZE,
  type TinyArch,
  tinyConfigJson,
} from "./random_model.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_tiny_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Keys transformers 5.17 writes in config.json for each family (save_pretrained of a model). */
const HF_KEYS: Record<TinyArch, string[]> = {
  llama: [
    "architectures",
    "attention_bias",
    "attention_dropout",
    "bos_token_id",
    "dtype",
    "eos_token_id",
    "head_dim",
    "hidden_act",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "max_position_embeddings",
    "mlp_bias",
    "model_type",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "pad_token_id",
    "pretraining_tp",
    "rms_norm_eps",
    "rope_parameters",
    "tie_word_embeddings",
    "transformers_version",
    "use_cache",
    "vocab_size",
  ],
  qwen2: [
    "architectures",
    "attention_dropout",
    "bos_token_id",
    "dtype",
    "eos_token_id",
    "hidden_act",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "layer_types",
    "max_position_embeddings",
    "max_window_layers",
    "model_type",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "pad_token_id",
    "rms_norm_eps",
    "rope_parameters",
    "sliding_window",
    "tie_word_embeddings",
    "transformers_version",
    "use_cache",
    "use_sliding_window",
    "vocab_size",
  ],
  qwen3: [
    "architectures",
    "attention_bias",
    "attention_dropout",
    "bos_token_id",
    "dtype",
    "eos_token_id",
    "head_dim",
    "hidden_act",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "layer_types",
    "max_position_embeddings",
    "max_window_layers",
    "model_type",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "pad_token_id",
    "rms_norm_eps",
    "rope_parameters",
    "sliding_window",
    "tie_word_embeddings",
    "transformers_version",
    "use_cache",
    "use_sliding_window",
    "vocab_size",
  ],
  gemma3: [
    "_sliding_window_pattern",
    "architectures",
    "attention_bias",
    "attention_dropout",
    "attn_logit_softcapping",
    "bos_token_id",
    "dtype",
    "eos_token_id",
    "final_logit_softcapping",
    "head_dim",
    "hidden_activation",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "layer_types",
    "max_position_embeddings",
    "model_type",
    "num_attention_heads",
    "num_hidden_layers",
    "num_key_value_heads",
    "pad_token_id",
    "query_pre_attn_scalar",
    "rms_norm_eps",
    "rope_parameters",
    "sliding_window",
    "sliding_window_pattern",
    "tie_word_embeddings",
    "transformers_version",
    "use_bidirectional_attention",
    "use_cache",
    "vocab_size",
  ],
};

for (const arch of ["llama", "qwen2", "qwen3", "gemma3"] as TinyArch[]) {
  Deno.test(`tiny ${arch}: config.json has exactly the keys transformers writes`, async () => {
    await withTempDir(async (dir) => {
      await makeRandomModel(dir, { arch, seed: 1 });
      const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      assertEquals(Object.keys(json), HF_KEYS[arch]);
      assert(json.vocab_size >= TINY_TOKENIZER_SIZE, "tokenizer fits in the vocabulary");
      const head = json.head_dim ?? json.hidden_size / json.num_attention_heads;
      assertEquals(head % 2, 0, "even head_dim for RoPE");
      assert(json.num_key_value_heads < json.num_attention_heads, "GQA");
    });
  });
}

Deno.test("makeRandomModel is deterministic by seed", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(`${dir}/a`, { arch: "gemma3", seed: 42 });
    await makeRandomModel(`${dir}/b`, { arch: "gemma3", seed: 42 });
    await makeRandomModel(`${dir}/c`, { arch: "gemma3", seed: 43 });
    for (
      const file of ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"]
    ) {
      assertEquals(
        await Deno.readFile(`${dir}/a/${file}`),
        await Deno.readFile(`${dir}/b/${file}`),
      );
    }
    const a = await Deno.readFile(`${dir}/a/model.safetensors`);
    const c = await Deno.readFile(`${dir}/c/model.safetensors`);
    assertEquals(a.length, c.length);
    assert(a.some((byte, i) => byte !== c[i]), "a different seed gives different weights");
  });
});

Deno.test("tiny weights have the intended scales", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 7 });
    const file = await openSafetensors(`${dir}/model.safetensors`);
    try {
      const stats = async (name: string): Promise<[number, number]> => {
        const v = await file.readF32(name);
        const mean = v.reduce((s, x) => s + x, 0) / v.length;
        const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
        return [mean, sd];
      };
      const [em, es] = await stats("model.embed_tokens.weight");
      assertAlmostEquals(em, 0, 0.05);
      assertAlmostEquals(es, 1, 0.05);
      const [, ls] = await stats("model.layers.0.mlp.up_proj.weight");
      assertAlmostEquals(ls, 0.15, 0.01);
      const [nm] = await stats("model.layers.0.input_layernorm.weight");
      assertAlmostEquals(nm, 1, 0.1);
      assertEquals(file.metadata, { format: "pt" });
    } finally {
      file.close();
    }
  });
});

Deno.test("sharded tiny model: index maps every tensor and totals its bytes", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "qwen2", seed: 3, sharded: true, dtype: "BF16" });
    const index = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
    const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
    assertEquals(shards, [
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
    ]);
    let bytes = 0;
    let names = 0;
    for (const shard of shards) {
      const file = await openSafetensors(`${dir}/${shard}`);
      for (const name of file.names()) {
        assertEquals(index.weight_map[name], shard);
        const info = file.info(name)!;
        assertEquals(info.dtype, "BF16");
        bytes += info.end - info.begin;
        names++;
      }
      file.close();
    }
    assertEquals(names, Object.keys(index.weight_map).length);
    assertEquals(index.metadata.total_size, bytes);
  });
});

Deno.test("ropeScaling and overrides land in config.json", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(`${dir}/g`, {
      arch: "gemma3",
      seed: 1,
      ropeScaling: { rope_type: "linear", factor: 8.0 },
      overrides: { final_logit_softcapping: 30.0, sliding_window: 4 },
    });
    const g = JSON.parse(await Deno.readTextFile(`${dir}/g/config.json`));
    assertEquals(g.rope_parameters.full_attention, {
      factor: 8,
      rope_theta: 1000000,
      rope_type: "linear",
    });
    assertEquals(g.rope_parameters.sliding_attention, { rope_theta: 10000, rope_type: "default" });
    assertEquals([g.final_logit_softcapping, g.sliding_window], [30, 4]);

    await makeRandomModel(`${dir}/l`, {
      arch: "llama",
      seed: 1,
      ropeScaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 128 },
      overrides: { head_dim: undefined, hidden_size: 60 },
    });
    const l = JSON.parse(await Deno.readTextFile(`${dir}/l/config.json`));
    assert(!("head_dim" in l));
    assertEquals(l.rope_parameters.rope_type, "yarn");
    // Weights follow the overridden shapes.
    const file = await openSafetensors(`${dir}/l/model.safetensors`);
    assertEquals(file.info("model.layers.0.self_attn.q_proj.weight")?.shape, [60, 60]);
    file.close();
  });
  assertEquals(tinyConfigJson("qwen3", { dtype: "F16" }).dtype, "float16");
});

Deno.test("tiny tokenizer: GPT-2 byte alphabet and transformers-verified ids", async () => {
  const alphabet = byteLevelAlphabet();
  assertEquals(alphabet.length, 256);
  assertEquals(new Set(alphabet.map((a) => a.byte)).size, 256);
  assertEquals(alphabet[0], { byte: 0x21, char: "!" });
  assertEquals(alphabet.find((a) => a.byte === 0x20)?.char, "Ġ");
  assertEquals(alphabet.find((a) => a.byte === 0x0a)?.char, "Ċ");
  await withTempDir(async (dir) => {
    await makeRandomModel(`${dir}/l`, { arch: "llama", seed: 1 });
    await makeRandomModel(`${dir}/q`, { arch: "qwen2", seed: 1 });
    const llama = await loadTokenizer(`${dir}/l`);
    const qwen = await loadTokenizer(`${dir}/q`);
    // Expected values were produced by transformers 5.17 / tokenizers 0.23 (AutoTokenizer)
    // from these generated files.
    assertEquals(
      llama.encode("Hello, the world is in the morning!"),
      [
        286,
        39,
        68,
        271,
        78,
        11,
        258,
        266,
        273,
        75,
        67,
        220,
        268,
        220,
        259,
        258,
        278,
        273,
        77,
        274,
        0,
      ],
    );
    assertEquals(
      llama.encode("<|im_start|>user\nhi<|im_end|>"),
      [286, 287, 84, 82, 261, 198, 71, 72, 288],
    );
    assertEquals(
      qwen.encode("naïve café 日本語 🦀"),
      [
        77,
        64,
        127,
        107,
        85,
        68,
        270,
        64,
        69,
        127,
        102,
        220,
        162,
        245,
        98,
        162,
        250,
        105,
        164,
        103,
        252,
        220,
        172,
        253,
        99,
        222,
      ],
    );
    const messages = [
      { role: "user", content: "Hi there" },
      { role: "assistant", content: "Hello!" },
    ];
    assertEquals(
      qwen.applyChatTemplate(messages, { addGenerationPrompt: true }),
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n",
    );
    assertEquals(llama.tokenId("<|endoftext|>"), TINY_SPECIAL_TOKENS["<|endoftext|>"]);
  });
});
