/**
 * The prompt layout of spec §6.2: prefix (template opening + instruction), context, "\n\n" +
 * query, postfix (assistant opener, Qwen3's empty think block, the answer prefix), each part
 * tokenized on its own so the engine can evict the context alone.
 */

import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { loadTokenizer, type TextTokenizer } from "../engine/tokenizer.ts";
import {
  TINY_SPECIAL_TOKENS,
  tinyTokenizerConfig,
  tinyTokenizerJson,
} from "../engine/random_model.ts";
import {
  buildPrompt,
  DEFAULT_SYSTEM_PROMPT,
  EMPTY_THINK_BLOCK,
  promptIds,
  promptText,
  renderSamplePrompt,
  samplePromptTokens,
} from "./prompt.ts";
import { DEFAULT_INSTRUCTION, type Sample } from "./types.ts";
import { fixtureTokenizer, tinyTokenizer } from "./generators/testing.ts";

const SAMPLE: Pick<Sample, "instruction" | "context" | "queries"> = {
  context: "The grass is green. The secret word is heron.",
  queries: [
    {
      prompt: "  Q: What is the secret word?  ",
      answers: ["heron"],
      metric: "include_score",
      maxNewTokens: 8,
    },
    {
      prompt: "Q: What colour is the grass?",
      answers: ["green"],
      metric: "include_score",
      maxNewTokens: 8,
      answerPrefix: " The grass is",
    },
  ],
};

/** A tiny tokenizer with its chat template replaced. */
async function withTemplate(template: string | null): Promise<TextTokenizer> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_prompt_" });
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tinyTokenizerJson("qwen3")));
    const config = { ...tinyTokenizerConfig("qwen3"), chat_template: template };
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(config));
    return await loadTokenizer(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("chat format: the parts are the rendered conversation, split at the context and query", async () => {
  for (const tokenizer of [await tinyTokenizer(), await fixtureTokenizer()]) {
    const p = buildPrompt(tokenizer, SAMPLE);
    assertEquals(p.format, "chat");
    assertEquals(p.query.text, "\n\nQ: What is the secret word?");
    assertEquals(p.context.text, SAMPLE.context);
    assert(p.prefix.text.endsWith("<|im_start|>user\n" + DEFAULT_INSTRUCTION), p.prefix.text);
    assert(p.prefix.text.includes(`system\n${DEFAULT_SYSTEM_PROMPT}<|im_end|>`), p.prefix.text);
    assertEquals(p.postfix.text, "<|im_end|>\n<|im_start|>assistant\n");
    // The four parts concatenated are exactly what the template renders for the whole turn.
    const whole = tokenizer.applyChatTemplate([
      { role: "system", content: DEFAULT_SYSTEM_PROMPT },
      { role: "user", content: DEFAULT_INSTRUCTION + SAMPLE.context + p.query.text },
    ], { addGenerationPrompt: true });
    assertEquals(promptText(p), whole);
    // Each part is tokenized on its own; special tokens are recognised in the frame.
    assertEquals(p.context.ids, tokenizer.encode(SAMPLE.context, { addSpecialTokens: false }));
    assertEquals(p.postfix.ids[0], tokenizer.tokenId("<|im_end|>"));
    assertEquals(
      promptIds(p).length,
      p.prefix.ids.length + p.context.ids.length + p.query.ids.length + p.postfix.ids.length,
    );
  }
});

Deno.test("the answer prefix opens the assistant turn; every query shares prefix and context", async () => {
  const tokenizer = await tinyTokenizer();
  const all = renderSamplePrompt(tokenizer, SAMPLE);
  assertEquals(all.queries.length, 2);
  assertEquals(all.queries[1].postfix.text, "<|im_end|>\n<|im_start|>assistant\nThe grass is");
  const second = buildPrompt(tokenizer, SAMPLE, { queryIndex: 1 });
  assertEquals(second.prefix, all.prefix);
  assertEquals(second.context, all.context);
  assertEquals(second.postfix, all.queries[1].postfix);
  const longest = Math.max(
    ...all.queries.map((q) => q.query.ids.length + q.postfix.ids.length),
  );
  assertEquals(samplePromptTokens(all), all.prefix.ids.length + all.context.ids.length + longest);
  assertThrows(() => buildPrompt(tokenizer, SAMPLE, { queryIndex: 2 }), InputError, "queryIndex 2");
});

Deno.test("plain format: BOS as the tokenizer adds it, no system line, an answer cue", async () => {
  const tokenizer = await tinyTokenizer("llama");
  const p = buildPrompt(tokenizer, { ...SAMPLE, instruction: "Read this.\n" }, { format: "plain" });
  assertEquals(p.format, "plain");
  assertEquals(p.prefix.ids[0], TINY_SPECIAL_TOKENS["<|endoftext|>"]);
  assertEquals(p.prefix.text, "Read this.\n");
  assertEquals(p.postfix.text, "\n\nAnswer:");
  const withCue = buildPrompt(tokenizer, SAMPLE, {
    format: "plain",
    queryIndex: 1,
    systemPrompt: "Be brief.",
  });
  assertEquals(withCue.prefix.text, "Be brief.\n\n" + DEFAULT_INSTRUCTION);
  assertEquals(withCue.postfix.text, "\n\nThe grass is");
  // An empty answer prefix: the query's text carries its own cue, and nothing follows it.
  const ownCue = {
    ...SAMPLE,
    queries: [{ ...SAMPLE.queries[0], prompt: "Q: Where?\nAnswer:", answerPrefix: "" }],
  };
  const ended = buildPrompt(tokenizer, ownCue, { format: "plain" });
  assertEquals([ended.query.text, ended.postfix.text, ended.postfix.ids], [
    "\n\nQ: Where?\nAnswer:",
    "",
    [],
  ]);
  const qwen = buildPrompt(await tinyTokenizer("qwen3"), SAMPLE, { format: "plain" });
  assertEquals(
    qwen.prefix.ids,
    (await tinyTokenizer("qwen3")).encode(DEFAULT_INSTRUCTION, { addSpecialTokens: false }),
  );
});

Deno.test("auto picks plain without a template; chat without one is an InputError", async () => {
  const bare = await withTemplate(null);
  assertEquals(buildPrompt(bare, SAMPLE).format, "plain");
  assertThrows(
    () => buildPrompt(bare, SAMPLE, { format: "chat" }),
    InputError,
    "needs a chat template",
  );
});

const QWEN3_LIKE =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
  "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";

Deno.test("Qwen3: the empty think block ends the postfix unless thinking is on", async () => {
  const tokenizer = await withTemplate(QWEN3_LIKE);
  assertEquals(
    buildPrompt(tokenizer, SAMPLE).postfix.text,
    "<|im_end|>\n<|im_start|>assistant\n" + EMPTY_THINK_BLOCK,
  );
  assertEquals(
    buildPrompt(tokenizer, SAMPLE, { thinking: "on" }).postfix.text,
    "<|im_end|>\n<|im_start|>assistant\n",
  );
  // A template that knows <think> but never writes the block gets it appended.
  const stripsOnly = await withTemplate(
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + (message.content.split('</think>')[-1]) + '<|im_end|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}{#- <think> #}",
  );
  assert(buildPrompt(stripsOnly, SAMPLE).postfix.text.endsWith(EMPTY_THINK_BLOCK));
  // Templates without any think notion are left alone.
  assert(!buildPrompt(await tinyTokenizer(), SAMPLE).postfix.text.includes("think"));
});

Deno.test("a template that refuses a system turn gets the system text at the top of the user turn", async () => {
  const tokenizer = await withTemplate(
    "{%- if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}" +
      "{%- for message in messages %}{{- '<start_of_turn>' + message.role + '\\n' + message.content + '<end_of_turn>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}",
  );
  const p = buildPrompt(tokenizer, SAMPLE);
  assertEquals(
    p.prefix.text,
    `<start_of_turn>user\n${DEFAULT_SYSTEM_PROMPT}\n\n${DEFAULT_INSTRUCTION}`,
  );
  assertEquals(p.postfix.text, "<end_of_turn>\n<start_of_turn>model\n");
});

Deno.test("a template that mangles the user message is an InputError", async () => {
  const tokenizer = await withTemplate(
    "{%- for message in messages %}{{- message.content | upper }}{%- endfor %}",
  );
  assertThrows(() => buildPrompt(tokenizer, SAMPLE), InputError, "cannot be split");
});
