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
