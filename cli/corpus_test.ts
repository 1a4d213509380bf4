/**
 * `evictbench corpus`: generated samples written as JSONL or text, deterministic, and never
 * from the evaluation seed space when training data is asked for (nor the reverse).
 */

import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { loadTokenizer } from "../engine/tokenizer.ts";
import {
  corpusCommand,
  type CorpusCommandOptions,
  type CorpusRecord,
  parseLengthList,
  parseSeedList,
  runCorpusCommand,
} from "./corpus.ts";
import { jsonlText } from "./train_gate.ts";

const FIXTURE = new URL("../tests/fixtures/tokenizer/", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

function options(overrides: Partial<CorpusCommandOptions>): CorpusCommandOptions {
  return {
    tasks: ["niah_single_2", "gsm_synth"],
    tokenizer: FIXTURE,
    split: "train",
    n: 2,
    format: "jsonl",
    promptFormat: "auto",
    skipUnfit: false,
    list: false,
    ...overrides,
  };
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "evictbench_corpus_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("seed and length lists", () => {
  assertEquals(parseSeedList("1000000-1000002,1000010,1000001"), [
    1000000,
    1000001,
    1000002,
    1000010,
  ]);
  assertEquals(parseLengthList("512, 4k"), [512, 4096]);
  for (const bad of ["abc", "5-3", "1-"]) {
    try {
      parseSeedList(bad);
      throw new Error(`accepted ${bad}`);
    } catch (error) {
      assert(error instanceof InputError && error.message.startsWith("--seeds"), String(error));
    }
  }
});

Deno.test("corpus JSONL: one record per query, prompt plus completion, deterministic", async () => {
  await withTemp(async (dir) => {
    const out = `${dir}/a.jsonl`;
    await runCorpusCommand(options({ out, seeds: "1000000-1000001", lengths: "600,900" }));
    const text = await Deno.readTextFile(out);
    const records = text.trim().split("\n").map((l) => JSON.parse(l) as CorpusRecord);
    // niah: 2 lengths × 2 seeds × 2 samples; gsm (not length-fitted): 2 seeds × 2 samples.
    assertEquals(records.length, 8 + 4);
    for (const r of records) {
      assertEquals(r.split, "train");
      assert(r.seed >= 1_000_000);
      assert(r.prompt.startsWith("<|im_start|>system"), r.prompt.slice(0, 40));
      assert(r.completion.length > 0);
      assert(r.tokens.context > 0 && r.tokens.prefix > 0);
    }
    const niah = records.filter((r) => r.task === "niah_single_2");
    assertEquals(niah.map((r) => r.targetTokens), [600, 600, 600, 600, 900, 900, 900, 900]);
    assert(
      niah.every((r) =>
        r.tokens.prefix + r.tokens.context + r.tokens.query + r.tokens.postfix <= r.targetTokens!
      ),
    );
    const gsm = records.find((r) => r.task === "gsm_synth")!;
    assert(/The answer is \d+\.$/.test(gsm.completion), gsm.completion);
    await runCorpusCommand(
      options({ out: `${dir}/b.jsonl`, seeds: "1000000-1000001", lengths: "600,900" }),
    );
    assertEquals(await Deno.readTextFile(`${dir}/b.jsonl`), text);
  });
});

Deno.test("corpusCommand alone (the organism recipe's bundle) parses its flags as the CLI does", async () => {
  await withTemp(async (dir) => {
    const flags = ["--tokenizer", FIXTURE, "--tasks", "niah_single_2", "gsm_synth", "-n", "2"];
    flags.push("--seeds", "1000000-1000001", "--lengths", "600", "--with-ids", "--skip-unfit");
    await corpusCommand().exitOverride().parseAsync([...flags, "--out", `${dir}/a.jsonl`], {
      from: "user",
    });
    await runCorpusCommand(options({
      out: `${dir}/b.jsonl`,
      seeds: "1000000-1000001",
      lengths: "600",
      withIds: true,
      skipUnfit: true,
    }));
    const standalone = await Deno.readTextFile(`${dir}/a.jsonl`);
    assertEquals(standalone, await Deno.readTextFile(`${dir}/b.jsonl`));
    assertEquals(standalone.trim().split("\n").length, 4 + 4);
    await assertRejects(
      () =>
        corpusCommand().exitOverride().configureOutput({ writeErr: () => {} }).parseAsync(
          ["--bogus"],
          { from: "user" },
        ),
      Error,
      "unknown option",
    );
  });
});

Deno.test("--with-ids: the prompt ids are the parts as evaluation tokenizes them", async () => {
  await withTemp(async (dir) => {
    const out = `${dir}/ids.jsonl`;
    await runCorpusCommand(options({ out, seeds: "1000000", lengths: "600", withIds: true }));
    const records = (await Deno.readTextFile(out)).trim().split("\n").map((l) =>
      JSON.parse(l) as CorpusRecord
    );
    const tokenizer = await loadTokenizer(FIXTURE);
    for (const r of records) {
      assert(r.ids !== undefined, "ids requested");
      const t = r.tokens;
      assertEquals(r.ids.prompt.length, t.prefix + t.context + t.query + t.postfix);
      // Each part is tokenized alone, so the ids decode to the prompt text exactly.
      assertEquals(tokenizer.decode(r.ids.prompt, { skipSpecialTokens: false }), r.prompt);
      assertEquals(tokenizer.decode(r.ids.completion), r.completion);
    }
    await runCorpusCommand(
      options({ out: `${dir}/plain.jsonl`, seeds: "1000000", lengths: "600" }),
    );
    const plain = JSON.parse((await Deno.readTextFile(`${dir}/plain.jsonl`)).split("\n")[0]);
    assertEquals(plain.ids, undefined);
  });
});

Deno.test("corpus text: prompt and completion, records separated by a blank line", async () => {
  await withTemp(async (dir) => {
    const out = `${dir}/c.txt`;
    await runCorpusCommand(
      options({
        out,
        tasks: ["kv_retrieval"],
        n: 1,
        lengths: "700",
        format: "text",
        promptFormat: "plain",
      }),
    );
    const text = await Deno.readTextFile(out);
    assert(text.includes("JSON data:\n{"), text.slice(0, 200));
    assertEquals(text.split("\n\nKey: ").length - 1, 4, "four queries, four records");
  });
});

Deno.test("corpus refuses seeds from the other split, and bad requests, before writing", async () => {
  await withTemp(async (dir) => {
    const out = `${dir}/x.jsonl`;
    await assertRejects(
      () => runCorpusCommand(options({ out, seeds: "999999-1000001" })),
      InputError,
      "seed 999999 belongs to the evaluation seed space",
    );
    await assertRejects(
      () => runCorpusCommand(options({ out, split: "eval", seeds: "1000000" })),
      InputError,
      "training seed space",
    );
    await assertRejects(
      () => runCorpusCommand(options({ out, model: FIXTURE })),
      InputError,
      "exactly one of --model",
    );
    await assertRejects(
      () => runCorpusCommand(options({ out, tasks: ["niah_singel_2"] })),
      InputError,
      "did you mean niah_single_2",
    );
    await assertRejects(
      () => runCorpusCommand(options({ out, tasks: ["repoqa"], lengths: "512" })),
      InputError,
      "too small",
    );
    await assertRejects(() => Deno.stat(out), Deno.errors.NotFound);
    await assertRejects(
      () => runCorpusCommand(options({ out: dir })),
      InputError,
      `--out ${dir}: cannot write the file (it is a directory)`,
    );
  });
});

Deno.test("train-gate reads a JSONL corpus as the text format's documents", async () => {
  await withTemp(async (dir) => {
    const request = { tasks: ["kv_retrieval", "gsm_synth"], n: 2, lengths: "700" };
    await runCorpusCommand(options({ ...request, out: `${dir}/c.jsonl` }));
    await runCorpusCommand(options({ ...request, out: `${dir}/c.txt`, format: "text" }));
    const jsonl = await Deno.readTextFile(`${dir}/c.jsonl`);
    assertEquals(
      jsonlText(jsonl, "c.jsonl", "--corpus"),
      await Deno.readTextFile(`${dir}/c.txt`),
    );
    assertEquals(jsonlText('{"text":"a"}\n\n{"text":"b"}\n', "t.jsonl", "--corpus"), "a\n\nb\n");
    const broken = jsonl.split("\n").slice(0, 2).join("\n") + '\n{"prompt": "broken\n';
    assertThrows(
      () => jsonlText(broken, "c.jsonl", "--corpus"),
      InputError,
      "--corpus c.jsonl:3: not valid JSON",
    );
    assertThrows(
      () => jsonlText('{"prompt": 3}\n', "c.jsonl", "--corpus"),
      InputError,
      'c.jsonl:1: expected a record with a string "text", or "prompt" and "completion"',
    );
  });
});

Deno.test("the corpus subcommand through cli.ts: one error line for overlapping seeds; eval data on request", async () => {
  const run = async (args: string[]) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        "cli.ts",
        "corpus",
        ...args,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: o.code,
      stdout: new TextDecoder().decode(o.stdout),
      stderr: new TextDecoder().decode(o.stderr),
    };
  };
  const bad = await run(["--tokenizer", FIXTURE, "--tasks", "vt", "--seeds", "0-3"]);
  assertEquals(bad.code, 2, bad.stderr);
  assertEquals(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert(
    bad.stderr.startsWith("error: --seeds: seed 0 belongs to the evaluation seed space"),
    bad.stderr,
  );
  const good = await run([
    "--tokenizer",
    FIXTURE,
    "--tasks",
    "vt",
    "--split",
    "eval",
    "--seeds",
    "3",
    "-n",
    "1",
    "--lengths",
    "800",
  ]);
  assertEquals(good.code, 0, good.stderr);
  const record = JSON.parse(good.stdout) as CorpusRecord;
  assertEquals([record.id, record.split], ["vt/eval/s3/i0", "eval"]);
});
