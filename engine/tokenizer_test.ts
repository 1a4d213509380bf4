import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import {
  makeRandomModel,
  TINY_SPECIAL_TOKENS,
  tinyTokenizerConfig,
  tinyTokenizerJson,
} from "./random_model.ts";
import { loadTokenizer } from "./tokenizer.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_tok_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TEXTS = [
  "Hello, the world is in the morning!",
  "naïve café — 日本語 🦀🚀",
  "  spaces\tand\nnew\r\nlines  ",
  "",
];

Deno.test("tiny tokenizer: encode/decode round-trips text; BOS only with special tokens", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "llama", seed: 1 });
    const tok = await loadTokenizer(dir);
    const bos = TINY_SPECIAL_TOKENS["<|endoftext|>"];
    for (const text of TEXTS) {
      const plain = tok.encode(text, { addSpecialTokens: false });
      assertEquals(tok.decode(plain), text);
      const withBos = tok.encode(text);
      assertEquals(withBos, [bos, ...plain]);
      assertEquals(tok.decode(withBos, { skipSpecialTokens: true }), text);
      assertEquals(tok.decode(withBos), `<|endoftext|>${text}`);
    }
    // Merges apply: " the" is one token, bytes stay separate.
    const ids = tok.encode(" the", { addSpecialTokens: false });
    assertEquals(ids.length, 1);
    assertEquals(tok.token(ids[0]), "Ġthe");
    assertEquals(tok.tokenId("<|im_end|>"), TINY_SPECIAL_TOKENS["<|im_end|>"]);
    assertEquals(tok.tokenId("<|not_a_token|>"), null);
    // Special tokens in text are matched whole.
    assertEquals(
      tok.encode("<|im_start|>x", { addSpecialTokens: false })[0],
      TINY_SPECIAL_TOKENS["<|im_start|>"],
    );
    assertEquals(tok.vocabSize, 259 + 30);
    assertThrows(
      () => tok.decode([100000]),
      InputError,
      "token id 100000 is not in the tokenizer's vocabulary",
    );
  });
});

Deno.test("decode keeps spaces before punctuation for BPE, as transformers 5 does", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tinyTokenizerJson("qwen2")));
    const text = "Hi , there . It 's n't ?";
    for (const cleanup of [undefined, true]) {
      await Deno.writeTextFile(
        `${dir}/tokenizer_config.json`,
        JSON.stringify({ ...tinyTokenizerConfig("qwen2"), clean_up_tokenization_spaces: cleanup }),
      );
      const tok = await loadTokenizer(dir);
      assertEquals(tok.decode(tok.encode(text)), text);
    }
    // The explicit override still cleans up, as in transformers (verified against 5.17).
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({
        ...tinyTokenizerConfig("qwen2"),
        clean_up_tokenization_spaces: true,
        clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output: true,
      }),
    );
    const forced = await loadTokenizer(dir);
    assertEquals(forced.decode(forced.encode(text)), "Hi, there. It'sn't?");
  });
});

Deno.test("tiny qwen tokenizer adds no BOS", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "qwen3", seed: 1 });
    const tok = await loadTokenizer(dir);
    assertEquals(tok.encode("hi"), tok.encode("hi", { addSpecialTokens: false }));
    assertEquals(tok.specialTokens.bos_token, undefined);
    assertEquals(tok.specialTokens.eos_token, "<|im_end|>");
  });
});

Deno.test("chat template renders messages, BOS and the generation prompt", async () => {
  await withTempDir(async (dir) => {
    await makeRandomModel(dir, { arch: "gemma3", seed: 1 });
    const tok = await loadTokenizer(dir);
    assert(tok.hasChatTemplate);
    const messages = [
      { role: "user", content: "Hi there" },
      { role: "assistant", content: "Hello!" },
    ];
    assertEquals(
      tok.applyChatTemplate(messages, { addGenerationPrompt: true }),
      "<|endoftext|><|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n",
    );
    assertEquals(
      tok.applyChatTemplate(messages.slice(0, 1)),
      "<|endoftext|><|im_start|>user\nHi there<|im_end|>\n",
    );
    // extra variables override special tokens, as in transformers.
    assert(
      tok.applyChatTemplate(messages, { extra: { bos_token: "[B]" } }).startsWith(
        "[B]<|im_start|>",
      ),
    );
    assertThrows(() => tok.applyChatTemplate([]), InputError, "empty conversation");
  });
});

Deno.test("chat template sources: list form, chat_template.jinja, none, broken", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tinyTokenizerJson("qwen2")));
    const config = tinyTokenizerConfig("qwen2");
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({
        ...config,
        chat_template: [
          { name: "tool_use", template: "TOOLS" },
          { name: "default", template: "{{ messages[0]['content'] }}|{{ eos_token }}" },
        ],
      }),
    );
    const msgs = [{ role: "user", content: "q" }];
    assertEquals((await loadTokenizer(dir)).applyChatTemplate(msgs), "q|<|im_end|>");

    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "J:{{ messages | length }}");
    assertEquals((await loadTokenizer(dir)).applyChatTemplate(msgs), "J:1");
    await Deno.remove(`${dir}/chat_template.jinja`);

    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ ...config, chat_template: [{ name: "tool_use", template: "T" }] }),
    );
    await assertRejects(() => loadTokenizer(dir), InputError, 'no "default" template');

    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ ...config, chat_template: "{% if %}" }),
    );
    const broken = await loadTokenizer(dir);
    assertThrows(
      () => broken.applyChatTemplate(msgs),
      InputError,
      "tokenizer_config.json: chat template does not parse",
    );

    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ ...config, chat_template: "{{ raise_exception('roles must alternate') }}" }),
    );
    assertThrows(
      () => broken.applyChatTemplate(msgs),
      InputError,
      "does not parse",
    );
    const raising = await loadTokenizer(dir);
    const error = assertThrows(() => raising.applyChatTemplate(msgs), InputError);
    assert(error.message.includes("roles must alternate"), error.message);

    await Deno.remove(`${dir}/tokenizer_config.json`);
    const bare = await loadTokenizer(dir);
    assert(!bare.hasChatTemplate);
    assertThrows(() => bare.applyChatTemplate(msgs), InputError, "has no chat template");
    assertEquals(bare.decode(bare.encode("round trip")), "round trip");
  });
});

Deno.test("loadTokenizer: missing or malformed tokenizer.json", async () => {
  await withTempDir(async (dir) => {
    const missing = await assertRejects(() => loadTokenizer(dir), InputError);
    assertEquals(
      missing.message,
      `${dir}: tokenizer.json is missing (expected a Hugging Face tokenizer file)`,
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{ not json");
    await assertRejects(
      () => loadTokenizer(dir),
      InputError,
      `${dir}/tokenizer.json: not valid JSON`,
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ model: { type: "Nope" } }));
    await assertRejects(
      () => loadTokenizer(dir),
      InputError,
      `${dir}/tokenizer.json: unsupported or malformed tokenizer`,
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tinyTokenizerJson("llama")));
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "[");
    await assertRejects(
      () => loadTokenizer(dir),
      InputError,
      "tokenizer_config.json: not valid JSON",
    );
  });
});

Deno.test("golden ids from the Rust tokenizers library (tests/fixtures/tokenizer/golden.json)", async () => {
  const dir = new URL("../tests/fixtures/tokenizer/", import.meta.url).pathname;
  let golden: {
    cases: {
      text: string;
      ids: number[];
      ids_with_special: number[];
      decoded: string;
      decoded_skip_special: string;
      decoded_with_special: string;
    }[];
    chat?: {
      messages: { role: string; content: string }[];
      add_generation_prompt: boolean;
      rendered: string;
      rendered_no_generation_prompt?: string;
      ids?: number[];
    };
  };
  try {
    golden = JSON.parse(await Deno.readTextFile(`${dir}golden.json`));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log("SKIPPED: tests/fixtures/tokenizer/golden.json does not exist yet");
    return;
  }
  const tok = await loadTokenizer(dir);
  assert(golden.cases.length > 0);
  for (const c of golden.cases) {
    assertEquals(tok.encode(c.text, { addSpecialTokens: false }), c.ids, JSON.stringify(c.text));
    assertEquals(tok.encode(c.text), c.ids_with_special, JSON.stringify(c.text));
    assertEquals(tok.decode(c.ids), c.decoded);
    assertEquals(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special);
    assertEquals(tok.decode(c.ids_with_special), c.decoded_with_special);
  }
  if (golden.chat !== undefined) {
    const { messages, add_generation_prompt: addGenerationPrompt, rendered } = golden.chat;
    const text = tok.applyChatTemplate(messages, { addGenerationPrompt });
    assertEquals(text, rendered);
    if (golden.chat.rendered_no_generation_prompt !== undefined) {
      assertEquals(tok.applyChatTemplate(messages), golden.chat.rendered_no_generation_prompt);
    }
    if (golden.chat.ids !== undefined) {
      assertEquals(tok.encode(text, { addSpecialTokens: false }), golden.chat.ids);
    }
  }
});
