/**
 * The registry: registration checks, lookups with near matches, `key=value` parsing into each
 * field's type, validation messages naming the parameter, descriptions.
 */

import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { z } from "zod";
import { InputError } from "../errors.ts";
import "./mod.ts";
import {
  describeMethod,
  getMethod,
  levenshtein,
  listMethods,
  nearMatches,
  parseMethodParams,
  parseParamArgs,
  registerMethod,
  unregisterMethod,
} from "./registry.ts";
import type { AnyMethodDefinition } from "./types.ts";

const BUILT_IN = [
  "full",
  "kvzip",
  "snapkv",
  "pyramidkv",
  "expected-attention",
  "h2o",
  "tova",
  "streamingllm",
  "rkv",
  "head",
  "knorm",
  "random",
];

function plugin(overrides: Partial<AnyMethodDefinition> = {}): AnyMethodDefinition {
  return {
    id: "test-plugin",
    title: "Test",
    paper: null,
    summary: "A test method.",
    params: z.object({ alpha: z.number().default(1).describe("a number") }).strict(),
    signals: [],
    phases: ["prefill"],
    ratioIndependent: true,
    policy: { policy: "per-head" },
    createScorer: () => ({ score: () => [] }),
    ...overrides,
  };
}

Deno.test("every built-in method is registered, in mod.ts order", () => {
  const ids = listMethods().map((m) => m.id);
  for (const id of BUILT_IN) assert(ids.includes(id), `${id} registered`);
  assertEquals(ids.filter((id) => BUILT_IN.includes(id)), BUILT_IN);
});

Deno.test("getMethod: an unknown id is an InputError naming near matches", () => {
  const e = assertThrows(() => getMethod("snapvk"), InputError, 'unknown method "snapvk"');
  assert(e.message.includes('did you mean "snapkv"'), e.message);
  assert(!e.message.includes("\n"), "one line");
  assertThrows(() => getMethod("expected"), InputError, '"expected-attention"');
  const far = assertThrows(() => getMethod("zzzzzzzz"), InputError, "registered: ");
  assert(!far.message.includes("did you mean"), far.message);
});

Deno.test("registerMethod refuses bad ids, duplicates and inconsistent definitions in one line", () => {
  registerMethod(plugin());
  try {
    assertEquals(getMethod("test-plugin").id, "test-plugin");
    assertThrows(() => registerMethod(plugin()), InputError, "already registered (by Test)");
  } finally {
    assert(unregisterMethod("test-plugin"));
  }
  const refused = (overrides: Partial<AnyMethodDefinition>, message: string) => {
    const e = assertThrows(() => registerMethod(plugin(overrides)), InputError, message);
    assert(!e.message.includes("\n"), e.message);
    assertEquals(getMethod("full").id, "full");
  };
  refused({ id: "Bad_Id" }, "kebab");
  refused({ id: "knorm" }, "registerMethod(knorm): the id is already registered (by Key norm)");
  refused({ params: z.number() as never }, "z.object");
  refused({ createScorer: undefined as never }, "createScorer must be a function");
  refused({ phases: ["decode"] }, "decode defaults");
  refused({ phases: ["prefil" as never] }, 'unknown phase "prefil"');
  refused({ signals: ["keyz" as never] }, 'unknown signal "keyz"');
  refused({ policy: { policy: "global", safeguard: 2 } }, "safeguard");
  refused({ version: 0 }, "version must be a whole number ≥ 1 or a non-empty string, got 0");
  refused({ version: " " }, "version must be");
  refused({ version: null as never }, "version must be");
  for (const version of [2, "2025-06 fix"]) {
    registerMethod(plugin({ version }));
    assert(unregisterMethod("test-plugin"));
  }
  refused(
    { params: z.object({ w: z.number().positive().default(-1) }) },
    'the default of parameter "w" does not validate',
  );
  refused({ params: z.object({ w: z.number() }) }, 'parameter "w" has no valid default');
  assertEquals(unregisterMethod("test-plugin"), false);
});

Deno.test("parseParamArgs converts key=value to each field's type", () => {
  const snap = getMethod("snapkv");
  assertEquals(parseParamArgs(snap, ["window=64", "pool=avg", "variant=kvpress"]), {
    window: 64,
    pool: "avg",
    variant: "kvpress",
  });
  assertEquals(parseParamArgs(getMethod("h2o"), ["normalize=true", "recentShare=0.25"]), {
    normalize: true,
    recentShare: 0.25,
  });
  assertEquals(parseParamArgs(getMethod("kvzip"), ["opener=<x>=y"]), { opener: "<x>=y" });
});

Deno.test("parameter errors name the parameter and what was expected, on one line", () => {
  const snap = getMethod("snapkv");
  const cases: [string[], string][] = [
    [["windw=3"], 'unknown parameter "windw" (did you mean "window"?)'],
    [["window=abc"], 'parameter "window" expects an integer, got "abc"'],
    [["pool=median"], 'parameter "pool" expects one of max, avg, got "median"'],
    [["window"], "expected key=value"],
    [["window=3", "window=4"], "given more than once"],
  ];
  for (const [args, message] of cases) {
    const e = assertThrows(() => parseParamArgs(snap, args), InputError, message);
    assert(!e.message.includes("\n"));
  }
  assertThrows(
    () => parseParamArgs(getMethod("h2o"), ["normalize=maybe"]),
    InputError,
    "true or false",
  );
  const e = assertThrows(
    () => parseMethodParams(snap, { window: -3 }),
    InputError,
    'parameter "window"',
  );
  assert(e.message.includes("got -3") && e.message.includes(">0"), e.message);
  assertThrows(() => parseMethodParams(snap, { window: 2.5 }), InputError, 'parameter "window"');
  assertThrows(() => parseMethodParams(snap, { nope: 1 }), InputError, 'unknown parameter "nope"');
  assertEquals(parseMethodParams(getMethod("kvzip"), {}).chunk, 2000);
});

Deno.test("describeMethod lists parameters with types, defaults and descriptions", () => {
  const d = describeMethod("kvzip");
  assertEquals(d.paper?.url, "https://arxiv.org/abs/2505.23416");
  assertEquals(d.policy, { policy: "global" });
  assertEquals(d.phases, ["prefill"]);
  const chunk = d.params.find((p) => p.name === "chunk")!;
  assertEquals([chunk.type, chunk.default], ["integer", 2000]);
  assert(chunk.description.length > 0);
  const snap = describeMethod("snapkv");
  assertEquals(snap.params.find((p) => p.name === "pool")!.type, "max|avg");
  assertEquals(snap.decode, { window: 8, policy: { policy: "per-head" } });
  for (const m of listMethods()) {
    const desc = describeMethod(m.id);
    for (const p of desc.params) assert(p.description !== "", `${m.id}.${p.name} is documented`);
  }
});

Deno.test("levenshtein and nearMatches", () => {
  assertEquals(levenshtein("kitten", "sitting"), 3);
  assertEquals(levenshtein("", "abc"), 3);
  assertEquals(nearMatches("h20", ["h2o", "tova", "kvzip"]), ["h2o"]);
  assertEquals(nearMatches("stream", ["streamingllm", "snapkv"]), ["streamingllm"]);
});
