/**
 * Greedy generation: the same tokens as a hand-written forward + argmax loop, and each way of
 * stopping (end-of-sequence id, stop string, token limit) on tiny random models.
 */

import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { OrtAttention } from "../kernels/attention_ort.ts";
import { type CpuKvStore, referenceAttention } from "../kernels/kv_store.ts";
import { argmax, generate } from "./generate.ts";
import { tokenChooser } from "./sampling.ts";
import { Model } from "./model.ts";
import { makeRandomModel, type RandomModelOptions, type TinyArch } from "./random_model.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** Write a tiny model into a fresh temp dir, run `fn` with its path, then remove the dir. */
async function withModelDir(
  options: RandomModelOptions,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_generate_test_" });
  try {
    await makeRandomModel(dir, options);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Greedy decoding written out by hand: forward the prompt, then one token at a time. */
async function handLoop(model: Model, prompt: Int32Array, count: number): Promise<number[]> {
  const cache = model.createCache();
  let logits = await model.forward(prompt, cache);
  const out: number[] = [];
  while (true) {
    out.push(argmax(logits));
    if (out.length === count) return out;
    logits = await model.forward(Int32Array.of(out[out.length - 1]), cache);
  }
}

function promptIds(tokenizer: TextTokenizer, text: string): Int32Array {
  return Int32Array.from(tokenizer.encode(text, { addSpecialTokens: true }));
}

Deno.test("argmax picks the first of equal maxima, as torch.argmax does", () => {
  assertEquals(argmax(Float32Array.of(1, 3, 2, 3)), 1);
  assertEquals(argmax(Float32Array.of(-5, -7)), 0);
  assertEquals(argmax(Float32Array.of(-Infinity, -1e30, 0)), 2);
});

const ARCHS: TinyArch[] = ["llama", "qwen2", "qwen3", "gemma3"];

for (const [i, arch] of ARCHS.entries()) {
  for (const executor of ["reference", "onnxruntime"] as const) {
    Deno.test(`generate: greedy tokens equal forward + argmax by hand (${arch}, ${executor} attention)`, async () => {
      await withModelDir({ arch, seed: 40 + i }, async (dir) => {
        const model = await Model.load(dir, {
          attention: executor === "onnxruntime" ? new OrtAttention() : referenceAttention,
        });
        const prompt = promptIds(model.tokenizer(), "the quick brown fox jumps over it");
        const want = await handLoop(model, prompt, 10);
        for (const chunkSize of [undefined, 3]) {
          const result = await generate(model, model.createCache(), prompt, {
            maxNewTokens: 10,
            eosTokenIds: [],
            chunkSize,
          });
          assertEquals(result.tokens, want, `chunk size ${chunkSize}`);
          assertEquals(result.stopReason, "max-new-tokens");
          assertEquals(result.text, null, "no decoder, no text");
          assert(result.prefillMs > 0 && result.decodeMsPerToken > 0, "timings are measured");
        }
      });
    });
  }
}

/** The model the stopping tests use: it greedily writes "eseseseseseseseseses))" here. */
const STOP_MODEL: RandomModelOptions = { arch: "qwen3", seed: 4 };
const STOP_PROMPT = "the cat sat on the mat";

Deno.test("generate: maxNewTokens is respected and the hooks see every step", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    const model = await Model.load(dir);
    const prompt = promptIds(model.tokenizer(), STOP_PROMPT);
    for (const maxNewTokens of [1, 2, 7]) {
      const cache = model.createCache();
      const seen: number[] = [];
      const steps: number[] = [];
      const result = await generate(model, cache, prompt, {
        maxNewTokens,
        eosTokenIds: [],
        onToken: (id) => seen.push(id),
        beforeDecodeStep: (c: CpuKvStore, generated) => {
          assert(c === cache, "the hook gets the generation's cache");
          assertEquals(c.nextPosition, prompt.length + generated - 1);
          steps.push(generated);
        },
      });
      assertEquals(result.tokens.length, maxNewTokens);
      assertEquals(result.stopReason, "max-new-tokens");
      assertEquals(seen, result.tokens);
      assertEquals(steps, Array.from({ length: maxNewTokens - 1 }, (_, k) => k + 1));
      // The last token is returned but never run through the model.
      assertEquals(cache.nextPosition, prompt.length + maxNewTokens - 1);
      if (maxNewTokens === 1) assertEquals(result.decodeMsPerToken, 0);
    }
  });
});

Deno.test("generate: an end-of-sequence id stops generation", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    let model = await Model.load(dir);
    const tokenizer = model.tokenizer();
    const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const prompt = promptIds(tokenizer, STOP_PROMPT);
    const free = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 6,
      eosTokenIds: [],
    });
    const first = free.tokens[0];

    const stopped = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 6,
      eosTokenIds: [first],
      decode,
    });
    assertEquals(stopped.stopReason, "eos");
    assertEquals(stopped.tokens, [first], "the eos id is returned, and nothing after it");
    assertEquals(stopped.text, "", "the eos id is not part of the text");

    // Without eosTokenIds, generation_config.json's eos_token_id applies.
    const generationPath = `${dir}/generation_config.json`;
    const generation = JSON.parse(await Deno.readTextFile(generationPath));
    generation.eos_token_id = [first];
    await Deno.writeTextFile(generationPath, JSON.stringify(generation));
    model = await Model.load(dir);
    assertEquals(model.config.eosTokenIds, [first]);
    const byDefault = await generate(model, model.createCache(), prompt, { maxNewTokens: 6 });
    assertEquals(byDefault.stopReason, "eos");
    assertEquals(byDefault.tokens, [first]);
  });
});

Deno.test("generate: a stop string cuts the text before it", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    const model = await Model.load(dir);
    const tokenizer = model.tokenizer();
    const decode = (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const prompt = promptIds(tokenizer, STOP_PROMPT);
    const first = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 12,
      eosTokenIds: [],
      decode,
    });
    const text = first.text!;
    assertEquals(text, decode(first.tokens));
    assert(
      /^[ -~]+$/.test(text),
      `the model should write printable ASCII here, got ${JSON.stringify(text)}`,
    );
    // The last three characters, first seen only at the end: generation must stop there.
    const stop = text.slice(-3);
    assertEquals(
      text.indexOf(stop),
      text.length - 3,
      `"${stop}" first occurs at the end of "${text}"`,
    );

    const second = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 40,
      eosTokenIds: [],
      stopStrings: ["not in the text", stop],
      decode,
    });
    assertEquals(second.stopReason, "stop-string");
    assertEquals(second.tokens, first.tokens, "stops at the token completing the stop string");
    assertEquals(second.text, text.slice(0, -3));
    assert(!second.text!.includes(stop), "the stop string is cut off");

    // The earliest stop string wins, even when listed last.
    const early = text.slice(1, 3);
    const third = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 40,
      eosTokenIds: [],
      stopStrings: [stop, early],
      decode,
    });
    assertEquals(third.stopReason, "stop-string");
    assertEquals(third.text, text.slice(0, text.indexOf(early)));
    assert(third.tokens.length < first.tokens.length, "stopped earlier");
  });
});

Deno.test("generate: stop strings without a decoder are refused", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    const model = await Model.load(dir);
    await assertRejects(
      () =>
        generate(model, model.createCache(), Int32Array.of(1, 2, 3), {
          maxNewTokens: 4,
          stopStrings: ["x"],
        }),
      Error,
      "decode",
    );
  });
});

Deno.test("generate: at max_position_embeddings it stops and keeps what it generated", async () => {
  await withModelDir(
    { arch: "qwen3", seed: 3, overrides: { max_position_embeddings: 24 } },
    async (dir) => {
      const model = await Model.load(dir);
      const prompt = Int32Array.from({ length: 20 }, (_, i) => (i * 7) % 200);
      const cache = model.createCache();
      const result = await generate(model, cache, prompt, { maxNewTokens: 10, eosTokenIds: [] });
      assertEquals(result.stopReason, "max-positions");
      // Positions 20…23 were fed (the prompt's last logits gave the first token); the fifth
      // token was chosen at position 23's logits and has no position of its own.
      assertEquals(cache.nextPosition, 24);
      assertEquals(result.tokens.length, 5);
    },
  );
});

Deno.test("generate: seeded sampling equals a hand loop drawing from the same chooser", async () => {
  await withModelDir({ arch: "llama", seed: 12 }, async (dir) => {
    const model = await Model.load(dir);
    const prompt = promptIds(model.tokenizer(), "the quick brown fox jumps over it");
    const sampling = { temperature: 1.5, topP: 0.9, seed: 3 };
    const choose = tokenChooser(sampling);
    const cache = model.createCache();
    let logits = await model.forward(prompt, cache);
    const want: number[] = [];
    while (want.length < 12) {
      want.push(choose(logits));
      logits = await model.forward(Int32Array.of(want[want.length - 1]), cache);
    }
    const run = (seed: number) =>
      generate(model, model.createCache(), prompt, {
        maxNewTokens: 12,
        eosTokenIds: [],
        sampling: { ...sampling, seed },
      });
    assertEquals((await run(3)).tokens, want);
    const greedy = await handLoop(model, prompt, 12);
    assert((await run(4)).tokens.join() !== want.join(), "another seed, other tokens");
    assert(want.join() !== greedy.join(), "sampling at temperature 1.5 left the greedy path");
  });
});

Deno.test("generate: a thinking budget feeds the forced answer once, unless thinking ended", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    const model = await Model.load(dir);
    const prompt = promptIds(model.tokenizer(), STOP_PROMPT);
    const forcedIds = Int32Array.of(7, 8, 9);
    const free = await handLoop(model, prompt, 4);
    // No end of thinking among the first 3 tokens: the forced ids follow them.
    const endThinkingId = 1 + Math.max(...free, ...forcedIds);
    const result = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 9,
      eosTokenIds: [],
      thinkingBudget: { maxThinkingTokens: 3, endThinkingId, forcedIds },
    });
    assert(result.forcedAnswer);
    assertEquals(result.tokens.slice(0, 6), [...free.slice(0, 3), 7, 8, 9]);
    // The rest continues greedily from the prompt, the 3 thought tokens and the forced ids.
    const after = await handLoop(
      model,
      Int32Array.of(...prompt, ...free.slice(0, 3), 7, 8, 9),
      3,
    );
    assertEquals(result.tokens.slice(6), after);
    // maxNewTokens counts the forced ids: with room for one of them, one is fed.
    const short = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 4,
      eosTokenIds: [],
      thinkingBudget: { maxThinkingTokens: 3, endThinkingId, forcedIds },
    });
    assertEquals(short.tokens, [...free.slice(0, 3), 7]);
    // Thinking that ended before the budget is left alone.
    const ended = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 6,
      eosTokenIds: [],
      thinkingBudget: { maxThinkingTokens: 3, endThinkingId: free[1], forcedIds },
    });
    assert(!ended.forcedAnswer);
    assertEquals(ended.tokens, await handLoop(model, prompt, 6));
  });
});

Deno.test("generate: from a cache that holds the prompt and its last logits, as from the prompt", async () => {
  await withModelDir(STOP_MODEL, async (dir) => {
    const model = await Model.load(dir);
    const prompt = promptIds(model.tokenizer(), STOP_PROMPT);
    const want = await generate(model, model.createCache(), prompt, {
      maxNewTokens: 6,
      eosTokenIds: [],
    });
    const cache = model.createCache();
    const startLogits = await model.prefill(prompt, cache);
    const got = await generate(model, cache, new Int32Array(0), {
      maxNewTokens: 6,
      eosTokenIds: [],
      startLogits,
    });
    assertEquals(got.tokens, want.tokens);
    await assertRejects(
      () => generate(model, model.createCache(), new Int32Array(0), { maxNewTokens: 2 }),
      Error,
      "give prompt ids, or no ids and the logits",
    );
  });
});
