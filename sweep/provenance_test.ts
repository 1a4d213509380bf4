import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import {
  extendRunJson,
  readGitState,
  type RunSession,
  startSession,
  untrackedSource,
} from "./provenance.ts";

async function git(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", {
    args: ["-C", dir, "-c", "user.name=evictbench", "-c", "user.email=test@example.org", ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(out.success, `git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Write `file` (a path relative to `repo`) with its folders. */
async function writeFile(repo: string, file: string): Promise<void> {
  const slash = file.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(`${repo}/${file.slice(0, slash)}`, { recursive: true });
  await Deno.writeTextFile(`${repo}/${file}`, "{}\n");
}

/** A session as startSession makes it, without the git state of this checkout. */
function session(started: string): Promise<RunSession> {
  return startSession({
    backend: "cpu",
    datasets: {},
    taskVersions: { vt: 1 },
    methodVersions: {},
    gitDir: null,
  }).then((s) => ({ ...s, started }));
}

Deno.test("git state: the revision, and whether the tree differs from it", async () => {
  const repo = await Deno.makeTempDir({ prefix: "evictbench-git-" });
  try {
    await git(repo, "init", "-q");
    await Deno.writeTextFile(`${repo}/method.ts`, "export const v = 1;\n");
    await git(repo, "add", "method.ts");
    await git(repo, "commit", "-q", "-m", "a method");
    const clean = await readGitState(repo);
    assert(clean !== null && /^[0-9a-f]{40}$/.test(clean.revision), JSON.stringify(clean));
    assertEquals(clean, {
      revision: clean.revision,
      dirty: false,
      changedFiles: 0,
      untrackedSources: 0,
    });
    // A plugin not yet committed, then an edited tracked file: both make the tree dirty.
    await Deno.writeTextFile(`${repo}/mine.ts`, "export const mine = 1;\n");
    assertEquals(await readGitState(repo), {
      revision: clean.revision,
      dirty: true,
      changedFiles: 0,
      untrackedSources: 1,
    });
    await Deno.remove(`${repo}/mine.ts`);
    await Deno.writeTextFile(`${repo}/method.ts`, "export const v = 2;\n");
    assertEquals(await readGitState(repo), {
      revision: clean.revision,
      dirty: true,
      changedFiles: 1,
      untrackedSources: 0,
    });
    // A session records it; outside a checkout it has no git field at all.
    const flagged = await startSession({
      backend: "cpu",
      datasets: {},
      taskVersions: {},
      methodVersions: {},
      gitDir: repo,
    });
    assertEquals(flagged.git, {
      revision: clean.revision,
      dirty: true,
      changedFiles: 1,
      untrackedSources: 0,
    });
    assert(!("git" in await session("now")));
  } finally {
    await Deno.remove(repo, { recursive: true });
  }
  const plain = await Deno.makeTempDir();
  assertEquals(await readGitState(plain), null);
  await Deno.remove(plain);
});

Deno.test("git state: untracked data, checkpoints, run output and sweep configs leave the tree clean", async () => {
  const repo = await Deno.makeTempDir({ prefix: "evictbench-git-" });
  try {
    await git(repo, "init", "-q");
    await Deno.writeTextFile(`${repo}/.gitignore`, "node_modules/\n");
    await Deno.writeTextFile(`${repo}/method.ts`, "export const v = 1;\n");
    await git(repo, "add", ".gitignore", "method.ts");
    await git(repo, "commit", "-q", "-m", "a method");
    const { revision } = (await readGitState(repo))!;
    // What a user's checkout holds besides the code: none of it changes what a sweep does.
    const userFiles = [
      "data/longbench/hotpotqa.jsonl",
      "data/PaulGrahamEssays.json",
      "data/tasks/helper.ts",
      "models/Qwen3-0.6B/config.json",
      "models/Qwen3-0.6B/model.safetensors",
      "runs/default/run.json",
      "runs/default/rows.csv",
      "bench-out/bench.json",
      "node_modules/x/index.js",
      "sweep.json",
      "sweep.schema.json",
      "notes.md",
    ];
    for (const file of userFiles) await writeFile(repo, file);
    const clean = { revision, dirty: false, changedFiles: 0, untrackedSources: 0 };
    assertEquals(await readGitState(repo), clean);
    // Code and Deno's configuration count wherever they are, each file once.
    for (const file of ["methods/mine.ts", "run_mine.mjs", "deno.jsonc", "tools/x/package.json"]) {
      await writeFile(repo, file);
    }
    assertEquals(await readGitState(repo), { ...clean, dirty: true, untrackedSources: 4 });
    // A staged file and a deleted one are changes too.
    await git(repo, "add", "methods/mine.ts");
    await Deno.remove(`${repo}/method.ts`);
    assertEquals(await readGitState(repo), {
      ...clean,
      dirty: true,
      changedFiles: 2,
      untrackedSources: 3,
    });
  } finally {
    await Deno.remove(repo, { recursive: true });
  }
});

Deno.test("untracked source: modules and Deno's configuration, outside the data folders", () => {
  for (const path of ["mine.ts", "methods/mine.ts", "a/b/c.mjs", "deno.json", "x/package.json"]) {
    assert(untrackedSource(path), path);
  }
  for (
    const path of ["sweep.json", "heads.json", "data/x.ts", "models/m/config.json", "runs/r/a.js"]
  ) {
    assert(!untrackedSource(path), path);
  }
  // Only the checkout's own top-level folders are data: a source folder named so is not.
  assert(untrackedSource("methods/data/x.ts"));
});

Deno.test("a new run.json holds the run's fields and its first session", async () => {
  const first = await session("2026-01-01T00:00:00.000Z");
  assertEquals(first.ended, null);
  assertEquals([first.unitsRun, first.unitsSkipped, first.peakRssBytes], [null, null, null]);
  const run = extendRunJson(null, { config: { out: "runs/x" }, shard: null, artifacts: {} }, {
    session: first,
    path: "runs/x/run.json",
  });
  assertEquals(run, { config: { out: "runs/x" }, shard: null, artifacts: {}, sessions: [first] });
  // The next session: the fields become the latest, the first session stays as it was.
  const second = await session("2026-01-02T00:00:00.000Z");
  const again = extendRunJson(run, { config: { out: "runs/x", seed: 1 } }, {
    session: second,
    path: "runs/x/run.json",
  });
  assertEquals(again.sessions, [first, second]);
  assertEquals(again.config, { out: "runs/x", seed: 1 });
  assertEquals(run.sessions, [first], "the run.json read is not changed");
});

Deno.test("a run.json from before sessions: its run becomes the first session, other fields stay", async () => {
  const legacy = {
    config: { out: "runs/old" },
    shard: null,
    git: "0123456789abcdef0123456789abcdef01234567",
    artifacts: { "models/m": { 1: "gates sha256:0011223344556677" } },
    backend: "webgpu on llvmpipe",
    deno: { deno: "2.9.0", v8: "13", typescript: "5.8" },
    dependencies: { zod: "zod@4.6.7" },
    cpu: "a CPU × 2",
    memoryBytes: 1024,
    started: "2025-01-01T00:00:00.000Z",
    ended: null,
    peakRssBytes: null,
  };
  const next = await session("2026-01-01T00:00:00.000Z");
  const run = extendRunJson(legacy, { config: { out: "runs/old" }, shard: null, artifacts: {} }, {
    session: next,
    path: "runs/old/run.json",
  });
  assertEquals(run, {
    config: { out: "runs/old" },
    shard: null,
    artifacts: {},
    sessions: [{
      started: legacy.started,
      ended: null,
      git: { revision: legacy.git },
      backend: legacy.backend,
      deno: legacy.deno,
      dependencies: legacy.dependencies,
      cpu: legacy.cpu,
      memoryBytes: legacy.memoryBytes,
      peakRssBytes: null,
    }, next],
  });
  // Outside a checkout the old format wrote git: null; no git field then, as a session has.
  const outside = extendRunJson({ ...legacy, git: null }, {}, { session: next, path: "run.json" });
  assert(!("git" in (outside.sessions as Record<string, unknown>[])[0]));
  // A merge's run.json (no run of its own): its fields are kept, and sessions start now.
  const merged = { mergedFrom: ["a", "b"], shards: [{ config: {} }, { config: {} }] };
  assertEquals(extendRunJson(merged, { config: {} }, { session: next, path: "run.json" }), {
    ...merged,
    config: {},
    sessions: [next],
  });
});

Deno.test("a run.json whose sessions are not a list stops the sweep, naming the file", async () => {
  const next = await session("2026-01-01T00:00:00.000Z");
  assertThrows(
    () => extendRunJson({ sessions: {} }, {}, { session: next, path: "runs/x/run.json" }),
    InputError,
    'runs/x/run.json: "sessions" should be a list',
  );
});
