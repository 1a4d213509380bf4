import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { makeRandomModel } from "../engine/random_model.ts";
import { seededRandom } from "../kernels/random.ts";
import {
  canonicalModelPath,
  methodPolicy,
  type MethodSpec,
  sweepJsonSchema,
  validateSweepConfig,
} from "./config.ts";
import { mergeRuns } from "./merge.ts";
import { specWindow } from "./protocols.ts";
import { runSweep } from "./runner.ts";
import {
  readRunRows,
  type ResultRow,
  rowsToCsv,
  TIMING_COLUMNS,
  UNBOUNDED_BUDGET,
} from "./store.ts";
import { aggregate } from "./aggregate.ts";
import { gpuTest, testAdapter } from "../kernels/webgpu/test_support.ts";
import { parseModelConfig } from "../engine/config.ts";
import { gateDimsFor, gatedLayers, randomGates } from "../methods/gates/gate.ts";
import { MODEL_FINGERPRINT_KEY, writeGateFile } from "../methods/gates/gate_file.ts";
import { getMethod, registerMethod, unregisterMethod } from "../methods/mod.ts";
import { getTask, registerTask } from "../tasks/registry.ts";
import { fileSha256 } from "../digest.ts";
import { readGitState, type RunSession } from "./provenance.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MODEL = await Deno.makeTempDir({ prefix: "evictbench-sweep-model-" });
await makeRandomModel(MODEL, {
  arch: "qwen3",
  seed: 3,
  overrides: { max_position_embeddings: 4096 },
});

function config(out: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    models: [MODEL],
    methods: ["full", "snapkv", { id: "random", params: { seed: 1 } }],
    budgets: [1, 0.5, 0.25],
    tasks: [{ task: "niah_single_1", n: 2, lengths: [400] }, { task: "vt", n: 1, lengths: [400] }],
    out,
    ...extra,
  };
}

/** Rows without timing columns, in key order: what two runs of one config must share. */
function comparable(rows: ResultRow[]): string[] {
  return rows
    .map((r) => {
      const copy: Record<string, unknown> = { ...r };
      for (const c of TIMING_COLUMNS) delete copy[c];
      return JSON.stringify(copy);
    })
    .sort();
}

function withoutTiming(csv: string): string {
  // The timing columns are the last four of every record.
  return (csv.match(/(?:[^\n"]|"(?:[^"]|"")*")+/g) ?? [])
    .map((line) => line.split(",").slice(0, -4).join(","))
    .join("\n");
}

Deno.test("invalid configs fail with every problem listed, each with its path", () => {
  const error = assertThrows(
    () =>
      validateSweepConfig({
        models: [],
        methods: ["snapvk", { id: "h2o", params: { window: -3 } }],
        budgets: [1.5],
        tasks: ["niah_singel_1"],
        protocol: "sometimes",
        extra: true,
      }),
    InputError,
  );
  for (const expected of ["models", "budgets.0", "protocol", "extra"]) {
    assert(error.message.includes(expected), `missing "${expected}" in: ${error.message}`);
  }
  const names = assertThrows(
    () => validateSweepConfig({ models: ["m"], methods: ["snapvk"], tasks: ["niah_singel_1"] }),
    InputError,
  );
  assert(names.message.includes('did you mean "snapkv"'), names.message);
  assert(names.message.includes("niah_single_1"), names.message);
  assert(names.message.includes("2 problems\n"), names.message);
  // One problem is one line.
  const one = assertThrows(
    () => validateSweepConfig({ models: ["m"], methods: ["full"], tasks: ["vt"], budgets: [2] }),
    InputError,
  );
  assert(/^sweep config: budgets\.0: [^\n]+$/.test(one.message), one.message);
  const lengths = assertThrows(
    () =>
      validateSweepConfig({
        models: ["m"],
        methods: ["full"],
        tasks: [{ task: "gsm_synth", lengths: [512, 1024] }],
      }),
    InputError,
  );
  assertEquals(
    lengths.message,
    "sweep config: tasks.0.lengths: gsm_synth is not generated at a target length (expected no lengths)",
  );
});

Deno.test("budgets in context tokens: whole numbers given as such; ratio defaults, fractions and decode refused", () => {
  const base = { models: ["m"], methods: ["full", "snapkv"], tasks: ["vt"] };
  const message = (extra: Record<string, unknown>) =>
    assertThrows(() => validateSweepConfig({ ...base, ...extra }), InputError).message;
  const defaults =
    'sweep config: budgets: the default budgets are kept ratios; with budgetUnit "tokens" ' +
    'give budgets in context tokens kept per KV head (e.g. "budgets": [128, 512, 2048], or ' +
    "--budgets 128,512,2048)";
  assertEquals(message({ budgetUnit: "tokens" }), defaults);
  // The default sweep writes the default ratios out; --budget-unit tokens alone meets them so.
  assertEquals(
    message({ budgetUnit: "tokens", budgets: [1, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1] }),
    defaults,
  );
  assertEquals(
    message({ budgetUnit: "tokens", budgets: [0.5, 0.25] }),
    'sweep config: budgets: with budgetUnit "tokens" budgets are context tokens kept per KV ' +
      'head, but [0.5,0.25] are kept ratios; give token budgets (e.g. "budgets": [128, 512, ' +
      "2048], or --budgets 128,512,2048)",
  );
  assertEquals(
    message({ budgetUnit: "tokens", budgets: [64, 100.5] }),
    'sweep config: budgets.1: with budgetUnit "tokens", expected a whole number of context ' +
      "tokens kept per KV head, got 100.5",
  );
  assertEquals(
    message({ budgetUnit: "tokens", budgets: [64], protocol: "decode" }),
    "sweep config: budgetUnit: the decode protocol takes no budget unit; its budgets are " +
      "decodeBudgets (entries kept per KV head)",
  );
  // A kept ratio above 1 points at the unit that takes it.
  assertEquals(
    message({ budgets: [0.5, 128] }),
    "sweep config: budgets.1: expected a kept ratio in (0, 1], got 128 (for context tokens " +
      'kept per KV head, set budgetUnit "tokens")',
  );
  assert(message({ budgetUnit: "percent" }).startsWith("sweep config: budgetUnit: "));
  // Listed beside the schema's problems.
  const both = message({ budgetUnit: "tokens", budgets: [64.5], seed: -1 });
  assert(both.includes("2 problems\n"), both);
  assert(both.includes("\n  budgets.0: ") && both.includes("\n  seed: "), both);
  const tokens = validateSweepConfig({ ...base, budgetUnit: "tokens", budgets: [128, 2048, 1] });
  assertEquals([tokens.budgetUnit, tokens.budgets], ["tokens", [128, 2048, 1]]);
  assertEquals(validateSweepConfig(base).budgetUnit, "ratio");
});

Deno.test("the JSON Schema for editors requires only what a config cannot leave out", () => {
  const schema = sweepJsonSchema() as {
    required: string[];
    properties: Record<string, { items?: { anyOf?: { required?: string[] }[] } }>;
  };
  assertEquals(schema.required, ["models", "methods", "tasks"]);
  const entries = schema.properties.tasks.items!.anyOf!;
  assertEquals(entries.map((e) => e.required ?? null), [null, ["task"]]);
});

Deno.test("a method that cannot act in the protocol's phase is refused before any work", () => {
  const e = assertThrows(
    () =>
      validateSweepConfig({
        models: ["m"],
        methods: ["full", "snapkv", "kvzip", "pyramidkv"],
        tasks: ["vt"],
        protocol: "decode",
      }),
    InputError,
    "2 problems",
  );
  assert(e.message.includes('methods.2: method kvzip does not act in phase "decode"'), e.message);
  assert(e.message.includes("methods.3: method pyramidkv"), e.message);
  validateSweepConfig({ models: ["m"], methods: ["kvzip"], tasks: ["vt"], protocol: "chunked" });
});

Deno.test("a safeguard without a policy applies to the method's default; one with no effect is refused", () => {
  const agnostic = (spec: Record<string, unknown>) =>
    methodPolicy({ params: {}, ...spec } as MethodSpec, "query-agnostic");
  assertEquals(agnostic({ id: "kvzip", safeguard: 0.2 }), { policy: "global", safeguard: 0.2 });
  assertEquals(agnostic({ id: "kvzip" }), { policy: "global" });
  // Each of policy and safeguard overrides its own part of the default selection.
  assertEquals(agnostic({ id: "expected-attention" }), { policy: "per-layer", safeguard: 0.2 });
  assertEquals(agnostic({ id: "expected-attention", policy: "global" }), {
    policy: "global",
    safeguard: 0.2,
  });
  assertEquals(agnostic({ id: "expected-attention", safeguard: 0 }), { policy: "per-layer" });
  assertEquals(agnostic({ id: "expected-attention", policy: "per-head" }), { policy: "per-head" });
  assertEquals(agnostic({ id: "snapkv", policy: "global", safeguard: 0.2 }), {
    policy: "global",
    safeguard: 0.2,
  });
  assertEquals(agnostic({ id: "full" }), null);
  assertEquals(methodPolicy({ id: "gated", params: {} }, "decode"), { policy: "global" });
  const refused = (spec: Record<string, unknown>, protocol = "query-agnostic") =>
    assertThrows(
      () => validateSweepConfig({ models: ["m"], methods: [spec], tasks: ["vt"], protocol }),
      InputError,
    ).message;
  assertEquals(
    refused({ id: "snapkv", safeguard: 0.2 }),
    "sweep config: methods.0: safeguard 0.2 has no effect under the per-head policy, snapkv's " +
      'default (every head keeps its own top entries); set "policy" to "per-layer" (AdaKV\'s) ' +
      'or "global"',
  );
  assert(
    refused({ id: "snapkv", policy: "per-head", safeguard: 0.2 }).includes("per-head policy ("),
  );
  assert(refused({ id: "h2o", safeguard: 0.2 }, "decode").includes("h2o's default while decoding"));
  assertEquals(
    refused({ id: "full", safeguard: 0.2 }),
    "sweep config: methods.0: safeguard 0.2 has no effect: method full never evicts",
  );
  validateSweepConfig({
    models: ["m"],
    methods: [{ id: "snapkv", policy: "per-layer", safeguard: 0.2 }, { id: "kvzip", safeguard: 0 }],
    tasks: ["vt"],
  });
});

Deno.test("rows record the policy and safeguard that ran; policy variants are cells and series of their own", async () => {
  const out = await Deno.makeTempDir();
  await runSweep(
    validateSweepConfig(config(out, {
      methods: [
        "full",
        "snapkv",
        { id: "snapkv", policy: "global" },
        { id: "snapkv", policy: "global", safeguard: 0.5 },
        "expected-attention",
      ],
      budgets: [0.5],
      tasks: [{ task: "vt", n: 1, lengths: [400] }],
    })),
    { progress: false },
  );
  const rows = await readRunRows(out);
  const ran = new Set(rows.map((r) => `${r.method} ${r.policy} ${r.safeguard}`));
  assertEquals(
    ran,
    new Set([
      "full none NaN",
      "snapkv per-head NaN",
      "snapkv global NaN",
      "snapkv global 0.5",
      "expected-attention per-layer 0.2",
    ]),
  );
  const cells = (await Deno.readTextFile(`${out}/cells.csv`)).split("\n")
    .filter((l) => l.startsWith("average,") && l.includes(",snapkv,"));
  // Per series: the suite's overall average, and the one at the length asked (after the empty
  // task_options, task_version and task_data).
  assertEquals(cells.filter((l) => l.includes(",(average),,,,,")).length, 3);
  assertEquals(cells.filter((l) => l.includes(",(average),,,,400,")).length, 3);
});

Deno.test("one model directory written three ways is one model", () => {
  const forms = [
    "./models/organism-qwen3-10m/",
    "models/organism-qwen3-10m",
    `${Deno.cwd()}/models/organism-qwen3-10m`,
  ];
  for (const form of forms) {
    const config = validateSweepConfig({ models: [form], methods: ["full"], tasks: ["vt"] });
    assertEquals(config.models, ["models/organism-qwen3-10m"]);
  }
  assertEquals(canonicalModelPath("/elsewhere/model/"), "/elsewhere/model");
});

Deno.test("an unwritable output directory fails before any work starts", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/file`, "");
  const started = performance.now();
  await assertRejects(
    () => runSweep(validateSweepConfig(config(`${dir}/file/run`)), { progress: false }),
    InputError,
    "cannot write the run directory",
  );
  assert(performance.now() - started < 2000, "the check must come before loading anything");
});

Deno.test("a model or task the sweep cannot run fails before the run directory is touched", async () => {
  const parent = await Deno.makeTempDir();
  const out = `${parent}/run`;
  const refused: [Record<string, unknown>, string][] = [
    [{ models: [`${parent}/no-model`] }, "model directory not found"],
    [{ models: [parent] }, "config.json: file not found"],
    [{
      tasks: [{ task: "vt", n: 1, lengths: [400] }, { task: "niah_single_2", n: 1, lengths: [32] }],
    }, "too small"],
    [
      { tasks: [{ task: "niah_single_1", n: 1, lengths: [5000] }] },
      "task niah_single_1 at 5000 tokens: its prompts reach",
    ],
    [
      { methods: ["kvzip"], tasks: [{ task: "niah_single_1", n: 1, lengths: [3000] }] },
      "with method kvzip's own forwards",
    ],
  ];
  for (const [extra, message] of refused) {
    await assertRejects(
      () => runSweep(validateSweepConfig(config(out, extra)), { progress: false }),
      InputError,
      message,
    );
    assertEquals([...Deno.readDirSync(parent)].map((e) => e.name), []);
  }
});

Deno.test("longbench_file maxLength: a prompt beyond the window runs once cut in the middle, and is refused whole", async () => {
  const model = await Deno.makeTempDir({ prefix: "evictbench-sweep-model-512-" });
  await makeRandomModel(model, {
    arch: "qwen3",
    seed: 3,
    overrides: { max_position_embeddings: 512 },
  });
  const parent = await Deno.makeTempDir();
  const out = `${parent}/run`;
  // Its first sample's prompt is 3154 tokens of the tiny tokenizer.
  const path = `${ROOT}tests/fixtures/loaders/longbench_hotpotqa.jsonl`;
  const longbench = (options: Record<string, unknown>) =>
    validateSweepConfig(config(out, {
      models: [model],
      methods: ["full"],
      budgets: [1],
      tasks: [{ task: "longbench_file", n: 1, options: { path, ...options } }],
    }));
  await assertRejects(
    () => runSweep(longbench({}), { progress: false, report: false }),
    InputError,
    "task longbench_file sample longbench_hotpotqa/0: its prompts reach 3",
  );
  assertEquals([...Deno.readDirSync(parent)], []);
  // Rows differ in length, so every one is checked: the long one second in the file is refused
  // before any work too, not when the sweep reaches it.
  const lines = Deno.readTextFileSync(path).trim().split("\n");
  const reordered = `${parent}/longbench_hotpotqa.jsonl`;
  Deno.writeTextFileSync(reordered, `${lines[1]}\n${lines[0]}\n`);
  await assertRejects(
    () =>
      runSweep(
        validateSweepConfig(config(out, {
          models: [model],
          methods: ["full"],
          budgets: [1],
          tasks: [{ task: "longbench_file", n: 2, options: { path: reordered } }],
        })),
        { progress: false, report: false },
      ),
    InputError,
    "task longbench_file sample longbench_hotpotqa/1: its prompts reach 3",
  );
  assertEquals([...Deno.readDirSync(parent)].map((e) => e.name), ["longbench_hotpotqa.jsonl"]);
  const summary = await runSweep(longbench({ maxLength: 400 }), {
    progress: false,
    report: false,
  });
  assertEquals(summary.unitsRun, 1);
  const [row] = await readRunRows(out);
  assertEquals(JSON.parse(row.task_options), { maxLength: 400, path });
  // 400 tokens of LongBench's plain prompt, then the chat template around them.
  assert(row.context_tokens < 400 && row.prompt_tokens <= 512, JSON.stringify(row));
});

Deno.test("gate files: checked before any work (shape and checkpoint), and other gates make other cells", async () => {
  const parent = await Deno.makeTempDir();
  const out = `${parent}/run`;
  const gates = `${parent}/gates.safetensors`;
  const run = () =>
    runSweep(
      validateSweepConfig(config(out, {
        methods: ["snapkv", { id: "gated", params: { gates } }],
        budgets: [0.5],
        tasks: [{ task: "niah_single_1", n: 1, lengths: [400] }],
      })),
      { progress: false, report: false },
    );
  await assertRejects(run, InputError, `method gated: no gate file at ${gates}`);
  assertEquals([...Deno.readDirSync(parent)], []);
  const modelConfig = parseModelConfig(JSON.parse(await Deno.readTextFile(`${MODEL}/config.json`)));
  const write = (seed: number, metadata: Record<string, string> = {}) =>
    writeGateFile(
      gates,
      randomGates(gateDimsFor(modelConfig), { layers: gatedLayers(modelConfig), seed }),
      { metadata },
    );
  // Gates trained for another checkpoint of this shape.
  await write(0, { [MODEL_FINGERPRINT_KEY]: "0123456789abcdef" });
  await assertRejects(
    run,
    InputError,
    `${gates}: gates were trained for checkpoint 0123456789abcdef`,
  );
  assertEquals([...Deno.readDirSync(parent)].map((e) => e.name), ["gates.safetensors"]);
  await write(0);
  const first = await run();
  assertEquals(first.unitsRun, 2);
  await write(1);
  const again = await run();
  // snapkv's unit is done; gated's cells are new, since its gates are other gates.
  assertEquals([again.unitsSkipped, again.unitsRun], [1, 1]);
  const recorded = JSON.parse(await Deno.readTextFile(`${out}/run.json`)).artifacts;
  assert(/^gates sha256:[0-9a-f]{16}$/.test(recorded[MODEL][1]), JSON.stringify(recorded));
  assertEquals((await readRunRows(out)).filter((r) => r.method === "gated").length, 2);
});

Deno.test("two runs of one config give identical rows.csv apart from timing columns", async () => {
  const a = await Deno.makeTempDir();
  const b = await Deno.makeTempDir();
  await runSweep(validateSweepConfig(config(a)), { progress: false, report: false });
  await runSweep(validateSweepConfig(config(b)), { progress: false, report: false });
  const rowsA = await Deno.readTextFile(`${a}/rows.csv`);
  const rowsB = await Deno.readTextFile(`${b}/rows.csv`);
  assertEquals(withoutTiming(rowsA), withoutTiming(rowsB));
  const rows = await readRunRows(a);
  // 2 + 1 samples × (full at 1 budget + 2 methods × 3 budgets) × 1 query each.
  assertEquals(rows.length, 3 * 7);
  assert(rows.every((r) => r.protocol === "query-agnostic"));
});

Deno.test("sampled answers repeat for one seed, and make cells of their own", async () => {
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  const sampled = (out: string, seed: number) =>
    validateSweepConfig(config(out, {
      methods: ["full"],
      budgets: [1],
      tasks: [{ task: "niah_single_1", n: 2, lengths: [400] }],
      // A random model's logits are flat: top-k 5 keeps the draws among a few tokens.
      sampling: { temperature: 2, topK: 5 },
      seed,
    }));
  for (const [i, seed] of [0, 0, 1].entries()) {
    await runSweep(sampled(dirs[i], seed), { progress: false, report: false });
  }
  const [a, b, c] = await Promise.all(dirs.map((d) => readRunRows(d)));
  assertEquals(comparable(a), comparable(b), "one seed, the same answers");
  assert(
    a.map((r) => r.prediction).join() !== c.map((r) => r.prediction).join(),
    "another seed, other answers",
  );
  const greedyDir = await Deno.makeTempDir();
  await runSweep(
    validateSweepConfig(config(greedyDir, {
      methods: ["full"],
      budgets: [1],
      tasks: [{ task: "niah_single_1", n: 2, lengths: [400] }],
    })),
    { progress: false, report: false },
  );
  const greedy = await readRunRows(greedyDir);
  assert(
    greedy.every((g) => a.every((r) => r.cell_id !== g.cell_id)),
    "sampling is in the cell id",
  );
  assert(a.map((r) => r.prediction).join() !== greedy.map((r) => r.prediction).join());
});

Deno.test("raising n adds samples to the same cells; rows keep their task options", async () => {
  const out = await Deno.makeTempDir();
  const tasks = (n: number) => [{ task: "niah_single_1", n, lengths: [400] }];
  const first = await runSweep(validateSweepConfig(config(out, { tasks: tasks(1) })), {
    progress: false,
    report: false,
  });
  const again = await runSweep(validateSweepConfig(config(out, { tasks: tasks(2) })), {
    progress: false,
    report: false,
  });
  // 3 methods per sample: the first sample's 3 units are done, the second's are new.
  assertEquals([first.unitsRun, again.unitsSkipped, again.unitsRun], [3, 3, 3]);
  const rows = await readRunRows(out);
  assertEquals(rows.length, 2 * 7);
  assertEquals(new Set(rows.map((r) => r.cell_id)).size, 7);
  const options = '{"depth":"random","seed":0,"split":"eval","start":0,"targetTokens":400}';
  assert(rows.every((r) => r.task_options === options), rows[0].task_options);
});

/** A run with one cheap method, one budget and one sample of `tasks`; the summary. */
function resumable(out: string, tasks: unknown[], methods: unknown[] = ["full"]) {
  return runSweep(validateSweepConfig(config(out, { methods, budgets: [0.5], tasks })), {
    progress: false,
    report: false,
  });
}

async function sessionsOf(out: string): Promise<RunSession[]> {
  return JSON.parse(await Deno.readTextFile(`${out}/run.json`)).sessions;
}

Deno.test("an essay haystack edited between runs makes new cells too", async () => {
  const out = await Deno.makeTempDir();
  const path = `${out}.essays.txt`;
  await Deno.writeTextFile(path, "The first essay begins here. It goes on for a while.\n");
  const tasks = [{ task: "niah_single_2", n: 1, lengths: [400], options: { haystackFile: path } }];
  assertEquals((await resumable(out, tasks)).unitsRun, 1);
  assertEquals((await resumable(out, tasks)).unitsSkipped, 1, "the same file: nothing to redo");
  await Deno.writeTextFile(path, "Another essay entirely. Its words are other words.\n");
  assertEquals((await resumable(out, tasks)).unitsRun, 1);
  const sessions = await sessionsOf(out);
  assertEquals(sessions[2].datasets[path], await fileSha256(path));
  assert(sessions[0].datasets[path] !== sessions[2].datasets[path]);
});

Deno.test("a benchmark file edited between runs makes new cells; the old rows stay", async () => {
  const out = await Deno.makeTempDir();
  // The fixture's short sample alone, so a prompt of a few dozen tokens.
  const [, short] = Deno.readTextFileSync(`${ROOT}tests/fixtures/loaders/longbench_hotpotqa.jsonl`)
    .trim().split("\n");
  const path = `${out}.hotpotqa.jsonl`;
  await Deno.writeTextFile(path, `${short}\n`);
  const tasks = [{ task: "longbench_file", n: 1, options: { path } }];
  assertEquals((await resumable(out, tasks)).unitsRun, 1);
  const before = await fileSha256(path);
  assertEquals((await resumable(out, tasks)).unitsSkipped, 1, "the same file: nothing to redo");
  // A corrected reference answer, as a new revision of a benchmark file has.
  await Deno.writeTextFile(
    path,
    `${JSON.stringify({ ...JSON.parse(short), answers: ["T. Reed"] })}\n`,
  );
  const after = await resumable(out, tasks);
  assertEquals([after.unitsRun, after.unitsSkipped], [1, 0]);
  const rows = await readRunRows(out);
  assertEquals(rows.map((r) => r.reference), ['["Tomas Reed"]', '["T. Reed"]']);
  assertEquals(new Set(rows.map((r) => r.cell_id)).size, 2);
  const sessions = await sessionsOf(out);
  assertEquals(sessions.map((s) => s.datasets[path]), [before, before, await fileSha256(path)]);
  assert(before !== sessions[2].datasets[path]);
});

Deno.test("a task's version bump makes new cells on resume; rows record the version", async () => {
  const out = await Deno.makeTempDir();
  const vt = { ...getTask("vt"), name: "vt_versioned" };
  registerTask(vt);
  const tasks = [{ task: "vt_versioned", n: 1, lengths: [400] }];
  assertEquals((await resumable(out, tasks)).unitsRun, 1);
  assertEquals((await resumable(out, tasks)).unitsSkipped, 1);
  vt.version = 2;
  const bumped = await resumable(out, tasks);
  assertEquals([bumped.unitsRun, bumped.unitsSkipped], [1, 0]);
  const rows = await readRunRows(out);
  assertEquals(rows.map((r) => r.task_version), [1, 2]);
  assertEquals(new Set(rows.map((r) => r.cell_id)).size, 2);
  assertEquals((await sessionsOf(out)).map((s) => s.taskVersions.vt_versioned), [1, 1, 2]);
});

Deno.test("a method's version bump makes new cells on resume; other methods' rows are reused", async () => {
  const out = await Deno.makeTempDir();
  const method = { ...getMethod("streamingllm"), id: "streamingllm-versioned", version: 1 };
  registerMethod(method);
  try {
    const tasks = [{ task: "vt", n: 1, lengths: [400] }];
    const methods = ["full", "streamingllm-versioned"];
    assertEquals((await resumable(out, tasks, methods)).unitsRun, 2);
    assertEquals((await resumable(out, tasks, methods)).unitsSkipped, 2);
    method.version = 2;
    const bumped = await resumable(out, tasks, methods);
    assertEquals([bumped.unitsRun, bumped.unitsSkipped], [1, 1]);
    const rows = await readRunRows(out);
    assertEquals(rows.map((r) => r.method), [
      "full",
      "streamingllm-versioned",
      "streamingllm-versioned",
    ]);
    assertEquals(
      (await sessionsOf(out)).map((s) => s.methodVersions),
      [1, 1, 2].map((v) => ({ "streamingllm-versioned": v })),
    );
  } finally {
    unregisterMethod("streamingllm-versioned");
  }
});

Deno.test("rows record the window, sampling and method version as settings, and a task's file as task_data", async () => {
  const out = await Deno.makeTempDir();
  const method = { ...getMethod("streamingllm"), id: "streamingllm-settings", version: 3 };
  registerMethod(method);
  try {
    const [, short] = Deno.readTextFileSync(
      `${ROOT}tests/fixtures/loaders/longbench_hotpotqa.jsonl`,
    ).trim().split("\n");
    const path = `${out}.hotpotqa.jsonl`;
    await Deno.writeTextFile(path, `${short}\n`);
    const tasks = [{ task: "longbench_file", n: 1, options: { path } }];
    await runSweep(
      validateSweepConfig(config(out, {
        methods: ["full", "streamingllm-settings"],
        budgets: [0.5],
        tasks,
        window: 8,
        sampling: { temperature: 2, topK: 5 },
      })),
      { progress: false, report: false },
    );
    const rows = await readRunRows(out);
    const sampling = '"sampling":{"temperature":2,"topK":5,"topP":1}';
    assertEquals(
      new Set(rows.map((r) => `${r.method} ${r.settings}`)),
      new Set([
        `full {${sampling},"window":8}`,
        `streamingllm-settings {"methodVersion":3,${sampling},"window":8}`,
      ]),
    );
    const digest = await fileSha256(path);
    assert(rows.every((r) => r.task_data === digest));
    // A plain run writes neither; a task that reads no file has no data digest.
    const plain = await Deno.makeTempDir();
    await resumable(plain, [{ task: "vt", n: 1, lengths: [400] }]);
    assert((await readRunRows(plain)).every((r) => r.settings === "" && r.task_data === ""));
  } finally {
    unregisterMethod("streamingllm-settings");
  }
});

Deno.test("a store from before the settings and task_data columns is upgraded on resume: rows kept, the sweep's own cells identified", async () => {
  const out = await Deno.makeTempDir();
  const gates = `${out}.gates.safetensors`;
  const modelConfig = parseModelConfig(JSON.parse(await Deno.readTextFile(`${MODEL}/config.json`)));
  await writeGateFile(
    gates,
    randomGates(gateDimsFor(modelConfig), { layers: gatedLayers(modelConfig), seed: 0 }),
  );
  const [, short] = Deno.readTextFileSync(`${ROOT}tests/fixtures/loaders/longbench_hotpotqa.jsonl`)
    .trim().split("\n");
  const path = `${out}.hotpotqa.jsonl`;
  await Deno.writeTextFile(path, `${short}\n`);
  const sweep = () =>
    runSweep(
      validateSweepConfig(config(out, {
        methods: ["full", { id: "gated", params: { gates } }],
        budgets: [0.5],
        tasks: [{ task: "longbench_file", n: 1, options: { path } }, {
          task: "vt",
          n: 1,
          lengths: [400],
        }],
        window: 8,
      })),
      { progress: false, report: false },
    );
  assertEquals((await sweep()).unitsRun, 4);
  const rows = await readRunRows(out);
  assert(rows.some((r) => r.task_data !== "") && rows.every((r) => r.settings !== ""));
  // As the previous release wrote it: no settings or task_data column, and a cell of another
  // sweep beside this one's.
  const foreign = { ...rows[0], cell_id: "0123456789abcdef", settings: "", task_data: "" };
  const text = await Deno.readTextFile(`${out}/rows.csv`) + rowsToCsv([foreign]);
  const [header, ...body] = parse(text) as string[][];
  const keep = header.map((_, i) => i).filter((i) =>
    !["settings", "task_data"].includes(header[i])
  );
  const legacy = stringify([header, ...body].map((r) => keep.map((i) => r[i])));
  await Deno.writeTextFile(`${out}/rows.csv`, legacy);
  await Deno.writeTextFile(`${out}/rows.commit`, `${new TextEncoder().encode(legacy).length}\n`);
  assert((await readRunRows(out)).every((r) => r.settings === "" && r.task_data === ""));
  const resumed = await sweep();
  assertEquals([resumed.unitsRun, resumed.unitsSkipped], [0, 4], "every cell is found again");
  assertEquals(await readRunRows(out), [...rows, foreign], "the sweep's cells get their values");
  assert((await Deno.readTextFile(`${out}/rows.csv`)).startsWith(header.join(",") + "\n"));
});

Deno.test("run.json: each sweep into a directory appends its session, and one from before sessions is extended", async () => {
  const out = await Deno.makeTempDir();
  // As the runner wrote it before sessions: one flat record of the latest run.
  const legacy = {
    config: { out },
    shard: null,
    git: "0123456789abcdef0123456789abcdef01234567",
    artifacts: {},
    backend: "cpu (onnxruntime CPU execution provider)",
    deno: { deno: "2.9.6", v8: "x", typescript: "y" },
    dependencies: { zod: "zod@4.6.7" },
    cpu: "a CPU × 2",
    memoryBytes: 1024,
    started: "2025-01-01T00:00:00.000Z",
    ended: "2025-01-01T00:01:00.000Z",
    peakRssBytes: 2048,
  };
  await Deno.writeTextFile(`${out}/run.json`, JSON.stringify(legacy));
  const tasks = [{ task: "vt", n: 1, lengths: [400] }];
  await resumable(out, tasks);
  const first = await sessionsOf(out);
  await resumable(out, tasks);
  const run = JSON.parse(await Deno.readTextFile(`${out}/run.json`));
  assertEquals(Object.keys(run), ["config", "shard", "artifacts", "sessions"]);
  assertEquals(run.config.out, out);
  const sessions: RunSession[] = run.sessions;
  assertEquals(sessions.length, 3);
  assertEquals(sessions.slice(0, 2), first, "a resume leaves earlier sessions as they were");
  assertEquals(sessions[0], {
    started: legacy.started,
    ended: legacy.ended,
    git: { revision: legacy.git },
    backend: legacy.backend,
    deno: legacy.deno,
    dependencies: legacy.dependencies,
    cpu: legacy.cpu,
    memoryBytes: legacy.memoryBytes,
    peakRssBytes: legacy.peakRssBytes,
  } as unknown as RunSession);
  const [run1, run2] = sessions.slice(1);
  assertEquals([run1.unitsRun, run1.unitsSkipped, run1.rowsWritten], [1, 0, 1]);
  assertEquals([run2.unitsRun, run2.unitsSkipped, run2.rowsWritten], [0, 1, 0]);
  for (const s of [run1, run2]) {
    assert(s.started <= s.ended!, `${s.started} … ${s.ended}`);
    assert(s.peakRssBytes! > 0 && s.backend.startsWith("cpu"), JSON.stringify(s));
    assertEquals(s.deno, Deno.version);
    assertEquals(typeof s.onnxruntime?.common, "string");
    // The evictbench checkout's revision (absent when the tests run outside a git checkout).
    assertEquals(s.git?.revision, (await readGitState(ROOT))?.revision);
  }
  assert(run1.started >= legacy.ended && run2.started >= run1.ended!);
});

Deno.test("two shards merged equal the unsharded run", async () => {
  const whole = await Deno.makeTempDir();
  const s0 = await Deno.makeTempDir();
  const s1 = await Deno.makeTempDir();
  const merged = await Deno.makeTempDir();
  await runSweep(validateSweepConfig(config(whole)), { progress: false, report: false });
  await runSweep(validateSweepConfig(config(s0)), {
    shard: { index: 0, count: 2 },
    progress: false,
    report: false,
  });
  await runSweep(validateSweepConfig(config(s1)), {
    shard: { index: 1, count: 2 },
    progress: false,
    report: false,
  });
  const [rows0, rows1] = [await readRunRows(s0), await readRunRows(s1)];
  assert(rows0.length > 0 && rows1.length > 0, "both shards must do some of the work");
  await mergeRuns(merged, [s0, s1]);
  assertEquals(comparable(await readRunRows(merged)), comparable(await readRunRows(whole)));
  // A run of another sweep, a missing run or a file: one line, and the output is not touched.
  const other = await Deno.makeTempDir();
  await runSweep(validateSweepConfig(config(other, { budgets: [0.3], methods: ["snapkv"] })), {
    progress: false,
    report: false,
  });
  const refused: [string[], string][] = [
    [[s0, other], "is not a shard of the sweep in"],
    [[s0, `${other}/nonexistent`], "no rows.csv"],
    [[s0, `${other}/run.json`], "not a directory"],
  ];
  for (const [runs, message] of refused) {
    const target = await Deno.makeTempDir();
    await assertRejects(() => mergeRuns(`${target}/merged`, runs), InputError, message);
    assertEquals([...Deno.readDirSync(target)], []);
  }
});

/** The committed byte length of a run directory's rows.csv (0 before the store exists). */
async function committedBytes(dir: string): Promise<number> {
  try {
    return Number((await Deno.readTextFile(`${dir}/rows.commit`)).trim()) || 0;
  } catch {
    return 0;
  }
}

Deno.test("kill test: SIGKILL at random points, then resume, gives the uninterrupted rows", async () => {
  const reference = await Deno.makeTempDir();
  await runSweep(validateSweepConfig(config(reference)), { progress: false, report: false });
  const want = comparable(await readRunRows(reference));

  const killed = await Deno.makeTempDir();
  const configPath = `${killed}.json`;
  await Deno.writeTextFile(configPath, JSON.stringify(config(killed)));
  const rand = seededRandom(2026);
  let kills = 0;
  let finished = false;
  for (let attempt = 0; attempt < 60 && !finished; attempt++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--node-modules-dir=manual",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        "--allow-run",
        "cli.ts",
        "sweep",
        configPath,
        "--no-report",
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const finish = child.status.then((status) => {
      exited = true;
      return status;
    });
    // Half the kills land at a random time from spawn (often during start-up or the first
    // unit); the other half a random moment after this attempt committed a unit, so kills hit
    // every phase of a unit, writes included, and the run still moves forward on any machine.
    const committedAtStart = await committedBytes(killed);
    const afterProgress = rand() < 0.5;
    const extra = afterProgress ? Math.floor(rand() * 300) : 200 + Math.floor(rand() * 1500);
    const t0 = performance.now();
    let progressAt = afterProgress ? Infinity : t0;
    while (!exited) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (exited) break;
      if (progressAt === Infinity && await committedBytes(killed) > committedAtStart) {
        progressAt = performance.now();
      }
      if (performance.now() - progressAt >= extra) {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited between the poll and the kill; its status says how.
        }
        break;
      }
    }
    const status = await finish;
    await child.stderr.cancel();
    if (status.signal === "SIGKILL") kills++;
    else {
      assertEquals(status.code, 0, "an uninterrupted resume must succeed");
      if (kills >= 5) finished = true;
      else {
        // It finished before enough kills: start over so the test kills at least 5 times.
        await Deno.remove(killed, { recursive: true });
        await Deno.mkdir(killed);
      }
    }
  }
  assert(kills >= 5, `the sweep was killed only ${kills} times`);
  assert(finished, "the sweep never completed after its kills");
  assertEquals(comparable(await readRunRows(killed)), want);
});

Deno.test("both protocols run end to end with full and one eviction method, recording the protocol", async () => {
  for (const protocol of ["query-agnostic", "query-aware"] as const) {
    const out = await Deno.makeTempDir();
    await runSweep(
      validateSweepConfig(config(out, {
        protocol,
        methods: ["full", "streamingllm"],
        budgets: [0.5],
        tasks: [{ task: "kv_retrieval", n: 1, lengths: [640] }],
      })),
      { progress: false, report: false },
    );
    const rows = await readRunRows(out);
    // kv_retrieval asks several queries of one context.
    const queries = new Set(rows.map((r) => r.query_index)).size;
    assert(queries > 1, "the sample should carry several queries");
    assertEquals(rows.length, 2 * queries);
    assert(rows.every((r) => r.protocol === protocol));
    const evicted = rows.filter((r) => r.method === "streamingllm");
    assert(evicted.every((r) => r.kv_bytes_held < r.kv_bytes_full), "eviction must free memory");
    assert(
      evicted.every((r) => Math.abs(r.kept_ratio_achieved - 0.5) < 0.05),
      `achieved ${evicted[0].kept_ratio_achieved}`,
    );
    // Each answer's reference NLL, its stop reason and the sample's metadata are recorded.
    assert(rows.every((r) => Number.isFinite(r.answer_nll) && r.answer_nll > 0), "answer_nll");
    assert(rows.every((r) => ["eos", "stop-string", "max-new-tokens"].includes(r.stop_reason)));
    assert(rows.every((r) => JSON.parse(r.sample_meta).generator === "kv_retrieval"));
    // The same query on the same cache whatever the method: full's NLL is the one for none.
    const full = rows.filter((r) => r.method === "full");
    const again = evicted.map((r) => full.find((f) => f.query_index === r.query_index)!);
    assert(evicted.some((r, i) => r.answer_nll !== again[i].answer_nll), "eviction moves NLLs");
  }
});

Deno.test("budgets in context tokens: each sample's ratio, one compression for budgets past its context, relative vs full", async () => {
  const out = await Deno.makeTempDir();
  await runSweep(
    validateSweepConfig(config(out, {
      methods: ["full", "snapkv"],
      budgetUnit: "tokens",
      budgets: [64, 2048, 100000],
      tasks: [{ task: "niah_single_1", n: 1, lengths: [400] }],
    })),
    { progress: false },
  );
  const rows = await readRunRows(out);
  assert(rows.every((r) => r.budget_kind === "context_tokens"), "every row counts context tokens");
  const full = rows.find((r) => r.method === "full")!;
  assertEquals(full.budget, UNBOUNDED_BUDGET, "the full cache has no budget");
  assertEquals(full.kept_ratio_asked, 1);
  const at = (budget: number) => rows.find((r) => r.method === "snapkv" && r.budget === budget)!;
  const n = full.context_tokens;
  assert(n > 64 && n < 2048, `context of ${n} tokens`);
  assertEquals(at(64).kept_ratio_asked, 64 / n);
  assertEquals([at(2048).kept_ratio_asked, at(100000).kept_ratio_asked], [1, 1]);
  // Entries held per (layer, KV head) of the compressed prompt: the protected prefix, and
  // exactly 64 of the context.
  const shape = JSON.parse(await Deno.readTextFile(`${MODEL}/config.json`));
  const heads = shape.num_hidden_layers * shape.num_key_value_heads;
  const prefix = full.entries_kept / heads - n;
  assert(
    Number.isInteger(prefix) && prefix > 0,
    `${full.entries_kept} entries over ${heads} heads`,
  );
  assertEquals(at(64).entries_kept / heads - prefix, 64, "context entries per head");
  assert(Math.abs(at(64).kept_ratio_achieved * n - 64) < 1e-9, `${at(64).kept_ratio_achieved}`);
  // Budgets past the context share one uncompressed cache: the same answer and entries.
  const same = (r: ResultRow) => [r.prediction, r.entries_kept, r.kept_ratio_achieved];
  assertEquals(same(at(2048)), same(at(100000)));
  assertEquals(same(at(100000)), same(full));
  assertEquals(new Set(rows.map((r) => r.cell_id)).size, 4);
  // A token budget and a ratio are other cells, even at the same number: into the same
  // directory, ratio 1 and one token per head both run.
  for (const unit of ["ratio", "tokens"]) {
    await runSweep(
      validateSweepConfig(config(out, {
        methods: ["snapkv"],
        budgetUnit: unit,
        budgets: [1],
        tasks: [{ task: "niah_single_1", n: 1, lengths: [400] }],
      })),
      { progress: false, report: false },
    );
  }
  const ones = (await readRunRows(out)).filter((r) => r.budget === 1);
  assertEquals(
    ones.map((r) => [r.budget_kind, r.kept_ratio_asked]),
    [["kept_ratio", 1], ["context_tokens", 1 / n]],
  );
  assert(ones[0].cell_id !== ones[1].cell_id);
  // Relative performance finds the full cache's cell at its unbounded budget (the random model
  // scores 0 everywhere, so the full cache is given a solved query to compare with).
  const solved = rows.map((r) => r.method === "full" ? { ...r, score: 1 } : r);
  const cells = aggregate(solved).filter((c) => c.scope === "task");
  assert(cells.every((c) => c.budget_kind === "context_tokens"));
  const snap = cells.filter((c) => c.method === "snapkv");
  assertEquals(snap.map((c) => [c.budget, c.relative]), [[100000, 0], [2048, 0], [64, 0]]);
  const html = await Deno.readTextFile(`${out}/report.html`);
  assert(html.includes("context tokens per KV head"), "the report names the budgets' unit");
});

Deno.test("query-aware budgets in context tokens count the query too", async () => {
  const out = await Deno.makeTempDir();
  await runSweep(
    validateSweepConfig(config(out, {
      protocol: "query-aware",
      methods: ["snapkv"],
      budgetUnit: "tokens",
      budgets: [64],
      tasks: [{ task: "niah_single_1", n: 1, lengths: [400] }],
    })),
    { progress: false, report: false },
  );
  const [row] = await readRunRows(out);
  // 64 of the context and query tokens: more than the context alone, fewer than the prompt.
  const evictable = 64 / row.kept_ratio_asked;
  assert(
    evictable > row.context_tokens && evictable < row.prompt_tokens,
    `${evictable} evictable tokens`,
  );
  assertEquals([row.budget_kind, row.budget], ["context_tokens", 64]);
});

Deno.test("the chunked protocol keeps what query-agnostic keeps below one 16k chunk", async () => {
  const rowsOf = async (protocol: string, budgets: Record<string, unknown>) => {
    const out = await Deno.makeTempDir();
    await runSweep(
      validateSweepConfig(config(out, {
        protocol,
        methods: ["full", "snapkv", "kvzip"],
        ...budgets,
        tasks: [{ task: "kv_retrieval", n: 1, lengths: [640] }],
      })),
      { progress: false, report: false },
    );
    return (await readRunRows(out)).map((r) =>
      [
        r.method,
        r.budget_kind,
        r.budget,
        r.kept_ratio_asked,
        r.query_index,
        r.entries_kept,
        r.prediction,
      ]
        .join("|")
    ).sort();
  };
  for (const budgets of [{ budgets: [0.5, 0.25] }, { budgetUnit: "tokens", budgets: [96, 4096] }]) {
    const chunked = await rowsOf("chunked", budgets);
    assertEquals(chunked, await rowsOf("query-agnostic", budgets));
    const smallest = `kvzip|${"budgetUnit" in budgets ? "context_tokens|96" : "kept_ratio|0.25"}`;
    const kvzip = chunked.filter((r) => r.startsWith(smallest));
    assert(kvzip.length > 0, "kvzip runs as eval.py does");
    assert(kvzip.every((r) => Number(r.split("|")[3]) < 1), "the smallest budget evicts");
  }
});

Deno.test("the decode protocol evicts during generation under an absolute budget", async () => {
  const out = await Deno.makeTempDir();
  await runSweep(
    validateSweepConfig(config(out, {
      protocol: "decode",
      methods: ["full", "streamingllm"],
      decodeBudgets: [64],
      tasks: [{ task: "vt", n: 1, lengths: [400] }],
    })),
    { progress: false, report: false },
  );
  const rows = await readRunRows(out);
  assertEquals(rows.length, 2);
  assert(rows.every((r) => r.protocol === "decode"));
  const evicted = rows.find((r) => r.method === "streamingllm")!;
  const full = rows.find((r) => r.method === "full")!;
  assertEquals([evicted.budget_kind, evicted.budget], ["entries_per_head", 64]);
  assert(rows.every((r) => Number.isNaN(r.answer_nll)), "no one cache to force the reference on");
  assert(evicted.kv_bytes_held < full.kv_bytes_held, "the decode budget must bound the cache");
  // Both rows describe the cache generation left: every entry of the full cache, prompt and
  // generated tokens; the evicted cache within B plus what one trigger interval adds.
  assertEquals(full.kept_ratio_achieved, 1);
  const heads = full.entries_kept / (full.prompt_tokens + full.generated_tokens - 1);
  assert(Number.isInteger(heads), `${full.entries_kept} entries over the fed positions`);
  assert(evicted.entries_kept <= heads * (64 + 128), `${evicted.entries_kept} entries`);
  assert(evicted.kept_ratio_achieved < 1);
});

gpuTest(
  "a webgpu sweep gives the cpu sweep's rows: same entries kept, same full-cache answers",
  async () => {
    const extra = {
      methods: ["full", "snapkv"],
      budgets: [1, 0.5],
      tasks: [{ task: "niah_single_1", n: 1, lengths: [400] }],
    };
    const cpuOut = await Deno.makeTempDir();
    const gpuOut = await Deno.makeTempDir();
    try {
      await runSweep(validateSweepConfig(config(cpuOut, { ...extra, backend: "cpu" })), {
        progress: false,
        report: false,
      });
      await runSweep(validateSweepConfig(config(gpuOut, { ...extra, backend: "webgpu" })), {
        progress: false,
        report: false,
      });
      const run = JSON.parse(await Deno.readTextFile(`${gpuOut}/run.json`));
      const backend = String(run.sessions.at(-1).backend);
      assert(backend.startsWith("webgpu on "), backend);
      const cpu = await readRunRows(cpuOut);
      const gpu = await readRunRows(gpuOut);
      const key = (r: ResultRow) => `${r.cell_id} ${r.sample_id} ${r.query_index}`;
      assertEquals(gpu.map(key).sort(), cpu.map(key).sort());
      for (const g of gpu) {
        const c = cpu.find((r) => key(r) === key(g))!;
        assertEquals(
          [g.entries_kept, g.kept_ratio_achieved, g.kv_bytes_full],
          [c.entries_kept, c.kept_ratio_achieved, c.kv_bytes_full],
          `${key(g)}: the same budget gives the same entries on both backends`,
        );
        if (g.method === "full") assertEquals(g.prediction, c.prediction, `${key(g)}: prediction`);
      }
    } finally {
      await Deno.remove(cpuOut, { recursive: true });
      await Deno.remove(gpuOut, { recursive: true });
    }
  },
);

Deno.test({
  name: "a webgpu sweep without an adapter fails before any work",
  ignore: testAdapter !== null,
  async fn() {
    const out = await Deno.makeTempDir();
    await assertRejects(
      () => runSweep(validateSweepConfig(config(out, { backend: "webgpu" })), { progress: false }),
      InputError,
      "no WebGPU adapter",
    );
    assertEquals([...Deno.readDirSync(out)], [], "nothing written");
  },
});

Deno.test('"spec" prefill window: 2 % below 16k tokens, 4096 above, none for kvzip', () => {
  assertEquals(specWindow(2048, "spec", { method: "snapkv" }), 40);
  assertEquals(specWindow(32_000, "spec", { method: "gated" }), 4096);
  assertEquals(specWindow(2048, "spec", { method: "kvzip" }), 0);
  assertEquals(specWindow(32_000, "spec", { method: "kvzip" }), 0);
  assertEquals(specWindow(2048, 16, { method: "kvzip" }), 16);
});
