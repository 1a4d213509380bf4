/**
 * The registry: tasks by name and suite, near-match suggestions for unknown names, options
 * checked by each task's schema, and registration rules.
 */

import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { z } from "zod";
import {
  getSuite,
  getTask,
  listTasks,
  nearMatches,
  parseTaskOptions,
  registerTask,
  resolveTasks,
  taskAveraged,
  taskSamples,
} from "./registry.ts";
import { SUITES } from "./types.ts";
import { tinyTokenizer } from "./generators/testing.ts";

const EXPECTED = [
  "niah_single_1",
  "niah_single_2",
  "niah_single_3",
  "niah_multikey_1",
  "niah_multikey_2",
  "niah_multikey_3",
  "niah_multivalue",
  "niah_multiquery",
  "vt",
  "cwe",
  "fwe",
  "qa_1",
  "qa_2",
  "kv_retrieval",
  "repoqa",
  "code_completion",
  "gsm_synth",
  "math_synth",
];

Deno.test("every generator is registered, listed by suite then name", () => {
  const names = listTasks().map((t) => t.name);
  for (const name of EXPECTED) assert(names.includes(name), `${name} is registered`);
  const suites = listTasks().map((t) => SUITES.indexOf(t.suite));
  assertEquals(suites, [...suites].sort((a, b) => a - b));
  assertEquals(
    listTasks({ suite: "code" }).map((t) => t.name).filter((n) => EXPECTED.includes(n)),
    ["code_completion", "repoqa"],
  );
  for (const t of listTasks()) {
    assert(t.description.length > 0 && t.version >= 1, `${t.name} describes itself`);
  }
});

Deno.test("unknown names are InputErrors with near matches", () => {
  assertThrows(
    () => getTask("niah_single"),
    InputError,
    "did you mean niah_single_1, niah_single_2, niah_single_3?",
  );
  assertThrows(() => getTask("repoq"), InputError, "did you mean repoqa");
  const e = assertThrows(() => getTask("zzzzzzzz"), InputError, 'unknown task "zzzzzzzz"');
  assert(!e.message.includes("did you mean"));
  assertThrows(() => getSuite("long_context"), InputError, "did you mean long-context");
  assertEquals(nearMatches("cwf", ["cwe", "fwe", "vt"]), ["cwe", "fwe"]);
});

Deno.test("resolveTasks expands suites and drops repeats", () => {
  const math = resolveTasks(["math", "gsm_synth"]).map((t) => t.name);
  assert(math.includes("gsm_synth") && math.includes("math_synth"));
  assertEquals(math.filter((n) => n === "gsm_synth").length, 1);
  assertThrows(() => resolveTasks([]), InputError, "no task or suite");
});

Deno.test("options: defaults filled, unknown keys and bad values rejected by name", () => {
  const vt = getTask("vt");
  const options = parseTaskOptions(vt, { hops: 6 });
  assertEquals([options.hops, options.chains, options.targetTokens, options.split], [
    6,
    1,
    4096,
    "eval",
  ]);
  assertThrows(
    () => parseTaskOptions(vt, { hops: 0 }),
    InputError,
    'task vt: option "hops": too small',
  );
  assertThrows(
    () => parseTaskOptions(vt, { n: -1 }),
    InputError,
    '"n": too small: expected number to be >=1 (got -1)',
  );
  assertThrows(
    () => parseTaskOptions(vt, { hop: 3 }),
    InputError,
    'unknown option "hop"; did you mean hops?',
  );
  assertThrows(() => parseTaskOptions(vt, { seed: 2_000_000 }), InputError, "training seed space");
  assertThrows(
    () => parseTaskOptions(getTask("gsm_synth"), { targetTokens: 512 }),
    InputError,
    "gsm_synth",
  );
});

Deno.test("registration rules: snake-case names, known suites, whole versions, no duplicates", () => {
  const base = {
    suite: "math" as const,
    description: "test",
    version: 1,
    source: "generator" as const,
    lengthControlled: false,
    options: z.strictObject({}),
    async *samples() {},
  };
  assertThrows(() => registerTask({ ...base, name: "Bad-Name" }), InputError, "lower snake case");
  assertThrows(
    () => registerTask({ ...base, name: "ok_name", suite: "poetry" as never }),
    InputError,
    "unknown suite",
  );
  for (const version of [0, 1.5, "2" as never]) {
    assertThrows(
      () => registerTask({ ...base, name: "ok_name", version }),
      InputError,
      "version must be a whole number ≥ 1",
    );
  }
  assertThrows(() => registerTask({ ...base, name: "vt" }), InputError, "registered twice");
});

Deno.test("taskSamples validates options and yields the task's samples", async () => {
  const tokenizer = await tinyTokenizer();
  const got = [];
  for await (const s of taskSamples("fwe", { n: 2, targetTokens: 700 }, { tokenizer })) {
    got.push(s.id);
  }
  assertEquals(got, ["fwe/eval/s0/i0", "fwe/eval/s0/i1"]);
});

Deno.test("MRCR alone opts out of averages; an unregistered task is averaged", () => {
  const alone = listTasks().filter((t) => !taskAveraged(t.name)).map((t) => t.name);
  assertEquals(alone, ["mrcr_file"]);
  assert(taskAveraged("niah_single_1"));
  assert(taskAveraged("a_plugin_task_not_loaded"));
});
