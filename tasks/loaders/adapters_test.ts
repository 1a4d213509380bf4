import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { loadTokenizer } from "../../engine/tokenizer.ts";
import { getTask, parseTaskOptions, taskSamples } from "../registry.ts";

const tokenizer = await loadTokenizer(
  new URL("../../tests/fixtures/tokenizer", import.meta.url).pathname,
);

Deno.test("loaders are registered tasks: a GSM8K file through the registry", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/test.jsonl`;
  const rows = [
    {
      question: "Tom has 3 apples and buys 4 more. How many apples does he have?",
      answer: "3 + 4 = <<3+4=7>>7\n#### 7",
    },
    {
      question: "A box holds 6 eggs. How many eggs are in 5 boxes?",
      answer: "6 * 5 = <<6*5=30>>30\n#### 30",
    },
    {
      question: "Ann reads 10 pages a day. How many pages in 3 days?",
      answer: "10 * 3 = <<10*3=30>>30\n#### 30",
    },
  ];
  await Deno.writeTextFile(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  assertEquals(getTask("gsm8k_file").suite, "math");
  const samples = [];
  for await (const s of taskSamples("gsm8k_file", { path, n: 2 }, { tokenizer })) samples.push(s);
  assertEquals(samples.length, 2);
  assertEquals(samples[1].queries[0].answers, ["30"]);
});

Deno.test("a loader task without its file path is an input error naming the option", () => {
  assertThrows(() => parseTaskOptions(getTask("squad_file"), { n: 3 }), InputError, "path");
});

Deno.test("longbench_file maxLength: bad values are one-line errors naming the option", () => {
  const task = getTask("longbench_file");
  for (const value of [0, -1, 1.5, "x"]) {
    const error = assertThrows(
      () => parseTaskOptions(task, { path: "hotpotqa.jsonl", maxLength: value }),
      InputError,
      `task longbench_file: option "maxLength": expected a whole number of tokens ≥ 1`,
    );
    assert(error.message.endsWith(`(got ${JSON.stringify(value)})`), error.message);
    assert(!error.message.includes("\n"), error.message);
  }
  // Absent, it is not an option of the unit at all, so rows and cell ids stay as before it.
  assertEquals(parseTaskOptions(task, { path: "hotpotqa.jsonl" }), {
    path: "hotpotqa.jsonl",
    n: 100,
  });
});

Deno.test("longbench_file maxLength cuts in the tokens of the model the sweep passes", async () => {
  const path = new URL("../../tests/fixtures/loaders/longbench_hotpotqa.jsonl", import.meta.url)
    .pathname;
  const samples = [];
  for await (const s of taskSamples("longbench_file", { path, maxLength: 400 }, { tokenizer })) {
    samples.push(s);
  }
  assertEquals(samples.map((s) => s.meta.truncated), [
    { promptTokens: 3020, keptTokens: 400 },
    undefined,
  ]);
});
