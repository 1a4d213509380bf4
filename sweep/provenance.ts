/**
 * What a run directory's run.json records. Its top level says what the sweep is, as the latest
 * `runSweep` into the directory had it: the config, the shard, and the methods' own files on each
 * model. `sessions` holds one record per `runSweep` into the directory (the first run and every
 * resume), appended and never rewritten: when it started and ended, the evictbench checkout's
 * git revision and whether its code had changes, the backend, the units it ran and skipped, its
 * peak RSS, the Deno, onnxruntime and dependency versions, the machine, the SHA-256 of every
 * benchmark file it read, and the tasks' and methods' versions.
 *
 * A run.json written before sessions existed (one flat record of the latest run) is read, and its
 * run-level fields become the first session (without the unit counts or dirty flag it never had).
 *
 * @module
 */

import os from "node:os";
import { fileURLToPath } from "node:url";
import { InputError } from "../errors.ts";
import { loadOrt } from "../kernels/ort.ts";

/**
 * The evictbench checkout's git state. Sessions written before `changedFiles` and
 * `untrackedSources` existed hold only `revision` and `dirty`, and the dirty flag of those also
 * counted untracked data.
 */
export interface GitState {
  /** The commit checked out (`git rev-parse HEAD`). */
  revision: string;
  /**
   * True when the code that ran may differ from that commit: a tracked file is changed, staged
   * or deleted, or an untracked source file exists (see {@linkcode untrackedSource}, e.g. a
   * method plugin or a script not yet committed). Untracked data, checkpoints and run outputs
   * leave it false.
   */
  dirty: boolean;
  /** Tracked files that differ from the commit (`git status --porcelain --untracked-files=no`). */
  changedFiles: number;
  /** Untracked files that are source by {@linkcode untrackedSource}. */
  untrackedSources: number;
}

/**
 * Top-level folders of the checkout whose untracked files never make it dirty: benchmark data
 * (`data/`), downloaded checkpoints (`models/`), sweep output (`runs/`, the default `--out`'s
 * parent) and benchmark output (`bench-out/`). What a sweep reads from them is recorded apart:
 * the SHA-256 of its benchmark files and of its methods' files.
 */
export const UNTRACKED_DATA_DIRS: readonly string[] = ["data", "models", "runs", "bench-out"];

/** Extensions of modules Deno can run. */
const MODULE_EXTENSIONS = [".ts", ".mts", ".tsx", ".js", ".mjs", ".jsx"];

/** Files that configure how Deno resolves and runs the code, at any depth. */
const CONFIG_FILES = ["deno.json", "deno.jsonc", "package.json"];

/**
 * Whether an untracked file at `path` (relative to the checkout, `/`-separated) could change
 * what a sweep does: a module (`.ts`, `.mts`, `.tsx`, `.js`, `.mjs`, `.jsx`) or a Deno or npm
 * configuration file (`deno.json`, `deno.jsonc`, `package.json`), outside
 * {@linkcode UNTRACKED_DATA_DIRS}. Other JSON is input the run records by itself: a sweep
 * config (its contents are run.json's `config`), its schema, a method's or task's data file
 * (hashed into the cells).
 *
 * @example
 * ```ts
 * untrackedSource("methods/mine.ts"); // true
 * untrackedSource("sweep.json"); // false
 * untrackedSource("data/tasks/loader.ts"); // false
 * ```
 */
export function untrackedSource(path: string): boolean {
  const parts = path.split("/");
  if (parts.length > 1 && UNTRACKED_DATA_DIRS.includes(parts[0])) return false;
  const name = parts[parts.length - 1];
  return CONFIG_FILES.includes(name) || MODULE_EXTENSIONS.some((ext) => name.endsWith(ext));
}

/** One `runSweep` into a run directory. */
export interface RunSession {
  /** ISO time the session started. */
  started: string;
  /** ISO time it ended; null while it runs, or when it was stopped. */
  ended: string | null;
  /** The evictbench checkout's git state; absent when the code is not in a git checkout. */
  git?: GitState;
  /** The compute backend, with the WebGPU adapter's description. */
  backend: string;
  /** Work units (sample × method) run, and skipped as already committed; null until the end. */
  unitsRun: number | null;
  unitsSkipped: number | null;
  /** Rows appended; null until the end. */
  rowsWritten: number | null;
  /** Peak resident memory in bytes; null until the end. */
  peakRssBytes: number | null;
  deno: typeof Deno.version;
  /** onnxruntime's version (`env.versions`), or null when it could not load. */
  onnxruntime: Record<string, string> | null;
  /** The dependencies deno.json pins. */
  dependencies: Record<string, string>;
  cpu: string;
  memoryBytes: number;
  /** The SHA-256 of each file the tasks read (a loader's `path`, an essay haystack), by path. */
  datasets: Record<string, string>;
  /** The version of each task the session ran (the task adapter's `version`). */
  taskVersions: Record<string, number>;
  /** The version of each method the session ran that declares one. */
  methodVersions: Record<string, number | string>;
}

/** What {@linkcode startSession} needs from the runner. */
export interface SessionInputs {
  backend: string;
  datasets: Record<string, string>;
  taskVersions: Record<string, number>;
  methodVersions: Record<string, number | string>;
  /**
   * Where to read the git state; default the evictbench checkout this module belongs to (none
   * when it was loaded from elsewhere than a file).
   */
  gitDir?: string | null;
}

/** The fields a session of the run.json format before sessions kept at its top level. */
const LEGACY_SESSION_FIELDS = [
  "started",
  "ended",
  "git",
  "backend",
  "deno",
  "dependencies",
  "cpu",
  "memoryBytes",
  "peakRssBytes",
] as const;

/**
 * The git state of the checkout at `dir`, or null when it is not one (or git is missing). Only
 * files under `dir` count, and untracked files that git ignores (.gitignore) do not.
 *
 * @example
 * ```ts
 * await readGitState(".");
 * // { revision: "2835977…", dirty: false, changedFiles: 0, untrackedSources: 0 }
 * ```
 */
export async function readGitState(dir: string): Promise<GitState | null> {
  const revision = await git(dir, ["rev-parse", "HEAD"]);
  if (revision === null) return null;
  // --no-optional-locks: reading the state must not write the checkout's index. One line per
  // changed tracked file (a rename is one line), none for untracked files.
  const status = await git(dir, [
    "--no-optional-locks",
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    ".",
  ]);
  // Every untracked file not ignored, relative to `dir`, NUL-separated (paths as they are).
  const others = await git(dir, ["ls-files", "--others", "--exclude-standard", "-z", "--", "."]);
  if (status === null || others === null) return null;
  const changedFiles = status.split("\n").filter((line) => line !== "").length;
  const untrackedSources = others.split("\0").filter((path) => path !== "" && untrackedSource(path))
    .length;
  return {
    revision: revision.trim(),
    dirty: changedFiles > 0 || untrackedSources > 0,
    changedFiles,
    untrackedSources,
  };
}

async function git(dir: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", dir, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** The evictbench checkout's root, or null when this module was not loaded from a file. */
function checkoutDir(): string | null {
  const root = new URL("..", import.meta.url);
  return root.protocol === "file:" ? fileURLToPath(root) : null;
}

async function dependencyVersions(): Promise<Record<string, string>> {
  const denoJson = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { imports: Record<string, string> };
  return Object.fromEntries(
    Object.entries(denoJson.imports).map(([name, spec]) => [name, spec.replace(/^npm:/, "")]),
  );
}

async function onnxruntimeVersions(): Promise<Record<string, string> | null> {
  try {
    return { ...(await loadOrt()).env.versions } as Record<string, string>;
  } catch {
    return null;
  }
}

/**
 * A new session, started now: its end, unit counts and peak memory are filled in when it ends.
 *
 * @example
 * ```ts
 * const session = await startSession({
 *   backend: "cpu",
 *   datasets: {},
 *   taskVersions: { vt: 1 },
 *   methodVersions: {},
 * });
 * ```
 */
export async function startSession(inputs: SessionInputs): Promise<RunSession> {
  const started = new Date().toISOString();
  const gitDir = inputs.gitDir === undefined ? checkoutDir() : inputs.gitDir;
  const git = gitDir === null ? null : await readGitState(gitDir);
  return {
    started,
    ended: null,
    ...(git === null ? {} : { git }),
    backend: inputs.backend,
    unitsRun: null,
    unitsSkipped: null,
    rowsWritten: null,
    peakRssBytes: null,
    deno: Deno.version,
    onnxruntime: await onnxruntimeVersions(),
    dependencies: await dependencyVersions(),
    cpu: `${os.cpus()[0]?.model.trim() ?? "unknown"} × ${os.cpus().length}`,
    memoryBytes: os.totalmem(),
    datasets: inputs.datasets,
    taskVersions: inputs.taskVersions,
    methodVersions: inputs.methodVersions,
  };
}

/**
 * The run.json to write when a session starts: `previous` (the directory's run.json, or null)
 * with `fields` (config, shard, artifacts) set at its top level and `session` appended to its
 * sessions. Every earlier session and any other top-level field (a merge's `mergedFrom`) is
 * kept; a run.json from before sessions has its run-level fields moved into the first session.
 *
 * @throws {InputError} naming `path` when `previous.sessions` is not a list.
 */
export function extendRunJson(
  previous: Record<string, unknown> | null,
  fields: Record<string, unknown>,
  options: { session: RunSession; path: string },
): Record<string, unknown> {
  const earlier = previous === null ? {} : { ...previous };
  let sessions: unknown[];
  if (earlier.sessions === undefined) {
    const legacy: Record<string, unknown> = {};
    for (const key of LEGACY_SESSION_FIELDS) {
      if (!(key in earlier)) continue;
      const value = earlier[key];
      delete earlier[key];
      // Then a string, or null outside a checkout; the dirty flag was not recorded.
      if (key === "git") {
        if (typeof value === "string") legacy.git = { revision: value };
      } else legacy[key] = value;
    }
    sessions = "started" in legacy ? [legacy] : [];
  } else if (Array.isArray(earlier.sessions)) {
    sessions = earlier.sessions;
  } else {
    throw new InputError(
      `${options.path}: "sessions" should be a list of the sweeps into this directory, got ${
        JSON.stringify(earlier.sessions)
      }; nothing was changed`,
    );
  }
  delete earlier.sessions;
  return { ...earlier, ...fields, sessions: [...sessions, options.session] };
}
