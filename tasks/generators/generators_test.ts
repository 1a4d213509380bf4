/**
 * What every generator promises: the same seed gives the same samples; prompts land within 2 %
 * (under, never over) of the target in the tokenizer given; a target too short is an
 * InputError; depths, seeds and splits do what they say.
 */

import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import type { TextTokenizer } from "../../engine/tokenizer.ts";
import { listTasks, parseTaskOptions } from "../registry.ts";
import { renderSamplePrompt, samplePromptTokens } from "../prompt.ts";
import type { Sample } from "../types.ts";
import type { GeneratorAdapter } from "./common.ts";
import { fitCount } from "./common.ts";
import { checkSeeds, sampleSeed, seedSplit, TRAIN_SEED_START } from "./seeds.ts";
import { splitGsmQuestion } from "./math.ts";
import { zetaCounts } from "./aggregation.ts";
import { fixtureTokenizer, tinyTokenizer } from "./testing.ts";

function generators(): GeneratorAdapter[] {
  return listTasks().filter((t) => t.source === "generator") as GeneratorAdapter[];
}

function make(
  task: GeneratorAdapter,
  tokenizer: TextTokenizer,
  raw: Record<string, unknown>,
  index = 0,
): Sample {
  return task.sample(parseTaskOptions(task, raw) as never, { tokenizer }, index);
}

Deno.test("generators are deterministic by seed, and differ across indices, seeds and splits", async () => {
  const tokenizer = await tinyTokenizer();
  for (const task of generators()) {
    const raw = task.lengthControlled ? { targetTokens: 1536, seed: 4 } : { seed: 4 };
    const a = make(task, tokenizer, raw, 2);
    assertEquals(make(task, tokenizer, raw, 2), a, `${task.name}: same seed, same sample`);
    assert(
      make(task, tokenizer, raw, 3).context !== a.context,
      `${task.name}: index 3 differs from 2`,
    );
    assert(
      make(task, tokenizer, { ...raw, seed: 5 }, 2).context !== a.context,
      `${task.name}: seed 5 differs`,
    );
    const train = make(task, tokenizer, { ...raw, seed: TRAIN_SEED_START + 4, split: "train" }, 2);
    assert(train.context !== a.context, `${task.name}: the training seed differs`);
    assertEquals(a.id, `${task.name}/eval/s4/i2`);
    assertEquals(train.id, `${task.name}/train/s${TRAIN_SEED_START + 4}/i2`);
  }
});

Deno.test("samples() yields n samples from start, the same as sample(i)", async () => {
  const tokenizer = await tinyTokenizer();
  const task = generators().find((t) => t.name === "vt")!;
  const options = parseTaskOptions(task, { n: 3, start: 5, targetTokens: 800 });
  const got: Sample[] = [];
  for await (const s of task.samples(options as never, { tokenizer })) got.push(s);
  assertEquals(got.map((s) => s.meta.index), [5, 6, 7]);
  assertEquals(got[1], task.sample(options as never, { tokenizer }, 6));
});

function checkLengths(name: string, tokenizer: TextTokenizer): void {
  for (const task of generators().filter((t) => t.lengthControlled)) {
    for (const target of [512, 2048, 4096]) {
      let sample: Sample;
      try {
        sample = make(task, tokenizer, { targetTokens: target, seed: 1 });
      } catch (error) {
        // Only the shortest target may be below a task's minimum, and it must say so.
        assert(
          error instanceof InputError && target === 512,
          `${task.name} at ${target}: ${error}`,
        );
        assert((error as Error).message.includes("too small"), (error as Error).message);
        continue;
      }
      const tokens = samplePromptTokens(renderSamplePrompt(tokenizer, sample));
      assertEquals(sample.meta.promptTokens, tokens, `${task.name}: recorded length`);
      assert(
        tokens <= target && tokens >= 0.98 * target,
        `${task.name} in the ${name} tokenizer: ${tokens} tokens for a target of ${target}`,
      );
    }
  }
}

Deno.test("prompt lengths are within 2 % of the target: tiny tokenizer", async () => {
  checkLengths("tiny", await tinyTokenizer());
});

Deno.test("prompt lengths are within 2 % of the target: fixture tokenizer", async () => {
  checkLengths("fixture", await fixtureTokenizer());
});

Deno.test("lengths fit the plain prompt format too (measured as it will be rendered)", async () => {
  const tokenizer = await tinyTokenizer("llama");
  const task = generators().find((t) => t.name === "niah_single_2")!;
  const prompt = { format: "plain" as const };
  const sample = task.sample(parseTaskOptions(task, { targetTokens: 1000 }) as never, {
    tokenizer,
    prompt,
  }, 0);
  const tokens = samplePromptTokens(renderSamplePrompt(tokenizer, sample, prompt));
  assert(tokens <= 1000 && tokens >= 980, `${tokens}`);
});

Deno.test("a fixed needle depth puts the needle at the start or the end of the haystack", async () => {
  const tokenizer = await tinyTokenizer();
  const task = generators().find((t) => t.name === "niah_single_2")!;
  const first = make(task, tokenizer, { targetTokens: 1024, depth: 0 });
  assert(first.context.startsWith("One of the special magic number"), first.context.slice(0, 80));
  const last = make(task, tokenizer, { targetTokens: 1024, depth: 1 });
  assert(
    /One of the special magic numbers for \S+ is: \d+\.$/.test(last.context),
    last.context.slice(-80),
  );
  assertEquals(first.meta.depths, [0]);
});

Deno.test("prose-haystack NIAH tasks take an essay file; the others refuse the option", async () => {
  const tokenizer = await tinyTokenizer();
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  await Deno.writeTextFile(path, "Essays begin with a sentence. Then another one follows it.\n");
  const task = generators().find((t) => t.name === "niah_single_2")!;
  const sample = make(task, tokenizer, { targetTokens: 400, depth: 1, haystackFile: path });
  assert(sample.context.startsWith("Essays begin with a sentence."), sample.context.slice(0, 80));
  assert(/One of the special magic numbers for \S+ is: \d+\.$/.test(sample.context));
  const noise = generators().find((t) => t.name === "niah_single_1")!;
  assertThrows(() => parseTaskOptions(noise, { haystackFile: path }), InputError, "haystackFile");
  assertEquals(task.fileOptions, ["haystackFile"]);
  await Deno.remove(path);
});

Deno.test("seed spaces: evaluation below 1 000 000, training above; requests across them fail", () => {
  assertEquals(seedSplit(0), "eval");
  assertEquals(seedSplit(TRAIN_SEED_START - 1), "eval");
  assertEquals(seedSplit(TRAIN_SEED_START), "train");
  checkSeeds([0, 999_999], "eval");
  checkSeeds([TRAIN_SEED_START], "train");
  assertThrows(
    () => checkSeeds([TRAIN_SEED_START, 42], "train", "--seeds"),
    InputError,
    "seed 42 belongs to the evaluation seed space",
  );
  assertThrows(() => checkSeeds([TRAIN_SEED_START], "eval"), InputError, "must not overlap");
  assertThrows(() => checkSeeds([1.5], "eval"), InputError, "not a seed");
  // The split is salted in: the same (task, index) under two seeds gives unrelated streams.
  assert(sampleSeed("vt", 1, 0) !== sampleSeed("vt", TRAIN_SEED_START + 1, 0));
  assert(sampleSeed("vt", 1, 0) !== sampleSeed("cwe", 1, 0));
});

Deno.test("a generator refuses a seed outside its split", async () => {
  const tokenizer = await tinyTokenizer();
  const task = generators().find((t) => t.name === "fwe")!;
  assertThrows(
    () => make(task, tokenizer, { seed: 5, split: "train" }),
    InputError,
    "evaluation seed space",
  );
  assertThrows(
    () => make(task, tokenizer, { seed: TRAIN_SEED_START }),
    InputError,
    "training seed space",
  );
});

Deno.test("fitCount finds the largest fitting count with few exact measurements", () => {
  // Tokens grow with characters at a rate that drifts a little, as real text does.
  for (
    const [charsPerUnit, tokensPerChar, target] of [[5, 0.3, 1000], [1, 1.1, 5000], [
      37,
      0.25,
      131072,
    ], [3, 0.8, 77]]
  ) {
    let calls = 0;
    const size = (x: number) => x * charsPerUnit + (x % 7);
    const tokens = (x: number) => {
      calls++;
      return 40 + Math.floor(size(x) * tokensPerChar * (1 + (0.05 * x) / (x + 1000)));
    };
    const got = fitCount(tokens, size, 0, target, 10_000_000);
    assert(
      tokens(got) <= target && tokens(got + 1) > target,
      `${charsPerUnit}, ${tokensPerChar}: ${got}`,
    );
    assert(calls <= 12, `${calls} exact measurements`);
  }
  assertEquals(fitCount((x) => x, (x) => x, 0, 50, 10), 10, "capped");
  assertEquals(
    fitCount((x) => 10 + Math.min(x, 5), (x) => Math.min(x, 5), 0, 50, 1000),
    1000,
    "plateau to the cap",
  );
});

Deno.test("splitGsmQuestion splits as the paper does (on '. ')", () => {
  const q =
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?";
  const split = splitGsmQuestion(q);
  assertEquals(
    split.question,
    "How much in dollars does she make every day at the farmers' market?",
  );
  assert(split.context.endsWith("$2 per fresh duck egg."));
  assertEquals(splitGsmQuestion("What is 2.5 times 4?"), {
    context: ".",
    question: "What is 2.5 times 4?",
  });
});

Deno.test("gsm_synth contexts reach 72 tokens; solutions end in GSM8K's '#### N'", async () => {
  const tokenizer = await fixtureTokenizer();
  const task = generators().find((t) => t.name === "gsm_synth")!;
  for (let i = 0; i < 5; i++) {
    const s = make(task, tokenizer, {}, i);
    assert(tokenizer.encode(s.context, { addSpecialTokens: false }).length >= 72);
    const q = s.queries[0];
    assert(/\n#### \d+$/.test(q.answers[0]), q.answers[0]);
    assert(/The answer is \d+\.$/.test(q.meta!.completion as string));
    assert(/\\boxed\{\d+\}/.test(q.meta!.boxed as string));
  }
});

Deno.test("fwe counts follow RULER's floor(N·k^-α/ζ(α))", () => {
  const counts = zetaCounts(1000, 2, 6);
  // ζ(2) = π²/6
  assertEquals(
    counts,
    [1, 4, 9, 16, 25, 36].map((k2) => Math.floor(1000 / k2 / (Math.PI ** 2 / 6))),
  );
});

Deno.test("unknown and bad generator options are InputErrors naming the field", () => {
  const task = generators().find((t) => t.name === "kv_retrieval")!;
  assertThrows(() => parseTaskOptions(task, { targetTokens: 10 }), InputError, "targetTokens");
  assertThrows(() => parseTaskOptions(task, { depth: 1.5 }), InputError, "depth");
  assertThrows(() => parseTaskOptions(task, { colour: "red" }), InputError, "kv_retrieval");
  assertEquals(parseTaskOptions(task, {}).queries, 4);
});
