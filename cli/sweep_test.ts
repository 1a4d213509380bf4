import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InvalidArgumentError } from "commander";
import { InputError } from "../errors.ts";
import { integerList } from "./options.ts";
import { runSweepCommand, withTaskFlags } from "./sweep.ts";

Deno.test("--n applies to every task entry, --lengths to those generated at a target length", () => {
  const tasks = [
    "niah_single_1",
    { task: "vt", n: 9, lengths: [4096], options: { hops: 2 } },
    "gsm_synth",
    "math",
    "code",
    "no_such_task",
  ];
  assertEquals(withTaskFlags(tasks, { n: 2, lengths: [512, 1024] }), [
    { task: "niah_single_1", n: 2, lengths: [512, 1024] },
    { task: "vt", n: 2, lengths: [512, 1024], options: { hops: 2 } },
    { task: "gsm_synth", n: 2 },
    { task: "math", n: 2 },
    { task: "code", n: 2, lengths: [512, 1024] },
    // Left for the config's validation to name.
    { task: "no_such_task", n: 2 },
  ]);
  assertEquals(withTaskFlags(tasks, {}), tasks, "no flags: entries as they were");
  assertEquals(withTaskFlags("vt", { n: 2 }), "vt", "not a list: left for validation");
});

Deno.test("integer list options: whole numbers at least the minimum, comma- or space-separated", () => {
  const lengths = integerList("--lengths", 32);
  assertEquals(lengths("512,1024", lengths("256")), [256, 512, 1024]);
  for (const bad of ["10", "512.5", "x"]) {
    assertThrows(() => lengths(bad), InvalidArgumentError, "--lengths expects");
  }
});

Deno.test("--budget-unit reaches the config: tokens over the default sweep's ratios, or under decode, is refused before any work", async () => {
  await assertRejects(
    () => runSweepCommand(undefined, { budgetUnit: "tokens", report: false }),
    InputError,
    'default sweep: budgets: the default budgets are kept ratios; with budgetUnit "tokens"',
  );
  await assertRejects(
    () =>
      runSweepCommand(undefined, {
        budgetUnit: "tokens",
        budgets: [128],
        methods: ["full", "snapkv"],
        protocol: "decode",
        report: false,
      }),
    InputError,
    "default sweep: budgetUnit: the decode protocol takes no budget unit",
  );
});
