/**
 * How a protocol generates each answer (spec §4.5): sampling seeded per sweep seed, sample and
 * query; thinking capped at new tokens − 2048, then the forced answer, where the tokenizer has
 * `</think>`.
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { makeRandomModel, TINY_TOKENIZER_SIZE } from "../engine/random_model.ts";
import { loadTokenizer, type TextTokenizer } from "../engine/tokenizer.ts";
import type { Sample } from "../tasks/types.ts";
import { Model } from "../engine/model.ts";
import {
  FORCED_ANSWER,
  generationSettings,
  type ProtocolInput,
  ratioSteps,
  referenceNll,
} from "./protocols.ts";

/** The tiny tokenizer with `</think>` added as a special token. */
async function thinkingTokenizer(): Promise<TextTokenizer> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_protocols_test_" });
  await makeRandomModel(dir, { arch: "qwen3", seed: 2 });
  const path = `${dir}/tokenizer.json`;
  const json = JSON.parse(await Deno.readTextFile(path));
  json.added_tokens.push({
    id: TINY_TOKENIZER_SIZE,
    content: "</think>",
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  await Deno.writeTextFile(path, JSON.stringify(json));
  return await loadTokenizer(dir);
}

function input(
  tokenizer: TextTokenizer,
  sample: Partial<Sample>,
  sampling?: ProtocolInput["sampling"],
): ProtocolInput {
  const full: Sample = {
    id: "gsm_synth/eval/s0/i0",
    task: "gsm_synth",
    instruction: "",
    context: "",
    queries: [
      { prompt: "q0", answers: ["1"], metric: "math_equal", maxNewTokens: 4096 },
      { prompt: "q1", answers: ["2"], metric: "math_equal", maxNewTokens: 512 },
    ],
    meta: {},
    ...sample,
  } as Sample;
  return { tokenizer, sample: full, sampling } as ProtocolInput;
}

Deno.test("generation settings: greedy and uncapped unless asked", async () => {
  const tokenizer = await thinkingTokenizer();
  assertEquals(await generationSettings(input(tokenizer, {}), 0), {});
});

Deno.test("generation settings: thinking capped at new tokens − 2048, then the forced answer", async () => {
  const tokenizer = await thinkingTokenizer();
  const thinking = input(tokenizer, { prompt: { thinking: "on", systemPrompt: null } });
  const capped = await generationSettings(thinking, 0);
  assertEquals(capped.thinkingBudget?.maxThinkingTokens, 4096 - 2048);
  assertEquals(capped.thinkingBudget?.endThinkingId, TINY_TOKENIZER_SIZE);
  assertEquals(tokenizer.decode([...capped.thinkingBudget!.forcedIds]), FORCED_ANSWER);
  assert(capped.thinkingBudget!.forcedIds.includes(TINY_TOKENIZER_SIZE), "</think> is one token");
  // 512 new tokens leave no room for 2048 after the thinking: no cap, as the spec's runs.
  assertEquals((await generationSettings(thinking, 1)).thinkingBudget, undefined);
  // A tokenizer without </think> has no think block to close.
  const plain = await loadTokenizer(
    await (async () => {
      const dir = await Deno.makeTempDir({ prefix: "evictbench_protocols_test_" });
      await makeRandomModel(dir, { arch: "qwen3", seed: 2 });
      return dir;
    })(),
  );
  const noThink = input(plain, { prompt: { thinking: "on", systemPrompt: null } });
  assertEquals((await generationSettings(noThink, 0)).thinkingBudget, undefined);
});

Deno.test("generation settings: each query samples from its own seeded stream", async () => {
  const tokenizer = await thinkingTokenizer();
  const sampling = { temperature: 0.6, topP: 0.95, topK: 0, seed: 0 };
  const seedOf = async (id: string, q: number, seed = 0) =>
    (await generationSettings(input(tokenizer, { id }, { ...sampling, seed }), q)).sampling!;
  const a = await seedOf("gsm_synth/eval/s0/i0", 0);
  assertEquals({ ...a, seed: 0 }, sampling);
  assertEquals(await seedOf("gsm_synth/eval/s0/i0", 0), a, "the same query, the same stream");
  const others = [
    await seedOf("gsm_synth/eval/s0/i1", 0),
    await seedOf("gsm_synth/eval/s0/i0", 1),
    await seedOf("gsm_synth/eval/s0/i0", 0, 1),
  ];
  for (const other of others) assert(other.seed !== a.seed, JSON.stringify(other));
});

Deno.test("reference NLL: teacher-forced after the prompt, the cache left as it was", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_protocols_test_" });
  await makeRandomModel(dir, { arch: "qwen2", seed: 6 });
  const model = await Model.load(dir);
  const tokenizer = model.tokenizer();
  const V = model.config.vocabSize;
  const context = Int32Array.from(tokenizer.encode("the cat sat on the mat and"));
  const query = Int32Array.from(tokenizer.encode(" then it said:"));
  const cache = model.createCache();
  await model.prefill(context, cache);
  const logits = await model.prefill(query, cache);
  const before = { next: cache.nextPosition, lengths: [...cache.lengths(0)] };
  const nll = await referenceNll(model, cache, tokenizer, logits, query, "hello there");
  assertEquals({ next: cache.nextPosition, lengths: [...cache.lengths(0)] }, before);
  // By hand: one forward of everything, the reference after a " " (the prompt ends in ":").
  const target = tokenizer.encode(" hello there", { addSpecialTokens: false });
  const all = Int32Array.of(...context, ...query, ...target);
  const every = await model.forward(all, model.createCache(), { logits: "all" });
  let total = 0;
  for (let t = 0; t < target.length; t++) {
    const row = every.subarray((context.length + query.length + t - 1) * V).subarray(0, V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    total += lse - row[target[t]];
  }
  assert(Math.abs(nll - total / target.length) < 1e-4, `${nll} vs ${total / target.length}`);
  // After a prompt ending in white space, no delimiter: the reference is encoded as it is.
  const spaced = Int32Array.from(tokenizer.encode(" "));
  const spacedLogits = await model.prefill(spaced, cache);
  const direct = await referenceNll(model, cache, tokenizer, spacedLogits, spaced, "hello");
  const plain = tokenizer.encode("hello", { addSpecialTokens: false });
  const allSpaced = Int32Array.of(...context, ...query, ...spaced, ...plain);
  const byHand = await model.forward(allSpaced, model.createCache(), { logits: "all" });
  let sum = 0;
  for (let t = 0; t < plain.length; t++) {
    const row = byHand.subarray((allSpaced.length - plain.length + t - 1) * V).subarray(0, V);
    const max = Math.max(...row);
    sum += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[plain[t]];
  }
  assert(Math.abs(direct - sum / plain.length) < 1e-4, `${direct} vs ${sum / plain.length}`);
  assert(Number.isNaN(await referenceNll(model, cache, tokenizer, logits, query, "")));
  model.dispose();
});

Deno.test("reference NLL: fed in chunks of the chunk size, the same NLL as one chunk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_protocols_test_" });
  await makeRandomModel(dir, { arch: "qwen3", seed: 7 });
  const model = await Model.load(dir);
  const tokenizer = model.tokenizer();
  const prompt = Int32Array.from(tokenizer.encode("the cat sat on the mat and then it said:"));
  const cache = model.createCache();
  const logits = await model.prefill(prompt, cache);
  const reference = "the dog ran in the park, the bird sang in the tree, and the sun went down";
  const fed = tokenizer.encode(" " + reference, { addSpecialTokens: false }).length - 1;
  assert(fed > 10, `the reference spans several chunks of 3 (${fed} tokens fed)`);
  // Every forward's logits, counted in rows, to see what the NLL holds at once.
  const forward = model.forward.bind(model);
  const rowsSeen: number[] = [];
  model.forward = async (ids, store, options) => {
    const out = await forward(ids, store, options);
    rowsSeen.push(out.length / model.config.vocabSize);
    return out;
  };
  const before = { next: cache.nextPosition, lengths: [...cache.lengths(0)] };
  const whole = await referenceNll(model, cache, tokenizer, logits, prompt, reference, {
    chunkSize: fed,
  });
  assertEquals(rowsSeen, [fed], "one chunk: every fed token's row at once");
  rowsSeen.length = 0;
  const chunked = await referenceNll(model, cache, tokenizer, logits, prompt, reference, {
    chunkSize: 3,
  });
  assert(rowsSeen.length === Math.ceil(fed / 3) && rowsSeen.every((r) => r <= 3), `${rowsSeen}`);
  assertEquals({ next: cache.nextPosition, lengths: [...cache.lengths(0)] }, before);
  assert(Math.abs(chunked - whole) <= 1e-6 * Math.abs(whole), `${chunked} vs ${whole}`);
  model.dispose();
});

Deno.test("ratio steps: kept ratios as given; token budgets as N / evictable, those past it sharing ratio 1", () => {
  assertEquals(ratioSteps([0.3, 1, 0.5], 400), [
    { keptRatio: 1, budgets: [1], keptTokens: null },
    { keptRatio: 0.5, budgets: [0.5], keptTokens: null },
    { keptRatio: 0.3, budgets: [0.3], keptTokens: null },
  ]);
  // Each token step carries its N, which the phases keep as that whole number.
  assertEquals(ratioSteps([64, 100_000, 400, 2048], 400, { unit: "tokens" }), [
    { keptRatio: 1, budgets: [100_000, 400, 2048], keptTokens: 100_000 },
    { keptRatio: 64 / 400, budgets: [64], keptTokens: 64 },
  ]);
  // A token budget of 1 is one token per head, not the whole context.
  assertEquals(ratioSteps([1], 400, { unit: "tokens" }), [
    { keptRatio: 1 / 400, budgets: [1], keptTokens: 1 },
  ]);
  assertEquals(ratioSteps([64], 0, { unit: "tokens" }), [
    { keptRatio: 1, budgets: [64], keptTokens: 64 },
  ]);
});
