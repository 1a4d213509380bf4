/**
 * Opening output files up front, so an unwritable path fails before any work starts.
 *
 * @module
 */

import { InputError } from "../errors.ts";

/** Open `path` for writing (created or truncated), or fail with one line naming `flag`. */
export async function openOutputFile(path: string, flag: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : (error as Error).message;
    throw new InputError(`${flag} ${path}: cannot write the file (${reason})`);
  }
}

/**
 * Check, before any work, that `path` can be written as a file (`kind` "file") or used as a
 * directory the command creates and fills (`kind` "directory"): its parent directory exists and
 * takes a new file, and the path is not already the other kind. Fails with one line naming
 * `flag`. Nothing is left behind.
 */
export async function checkOutputPath(
  path: string,
  flag: string,
  kind: "file" | "directory" = "file",
): Promise<void> {
  const fail = (reason: string) =>
    new InputError(`${flag} ${path}: cannot write the ${kind} (${reason})`);
  let existing: Deno.FileInfo | null = null;
  try {
    existing = await Deno.stat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw fail((error as Error).message);
  }
  if (existing !== null && kind === "file" && existing.isDirectory) throw fail("it is a directory");
  if (existing !== null && kind === "directory" && !existing.isDirectory) {
    throw fail("it is a file");
  }
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  // An existing directory must take new files itself; otherwise its parent must.
  const dir = existing?.isDirectory ? trimmed : slash < 0 ? "." : trimmed.slice(0, slash) || "/";
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw fail(`${dir} is not a directory`);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw fail("its directory does not exist");
  }
  const probe = `${dir}/.evictbench-write-probe-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(probe, "");
  } catch (error) {
    const reason = error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (error as Error).message.split("\n")[0];
    throw fail(reason);
  }
  await Deno.remove(probe).catch(() => {});
}
