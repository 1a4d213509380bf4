import { assertEquals, assertThrows } from "../../tests/assert.ts";
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
