/**
 * The one error type evictbench raises for bad input: a truncated file, an unknown method,
 * a ratio out of range. Its message is a single line that names the file or field and says
 * what was expected. The CLI prints it without a stack trace and exits with `exitCode`.
 *
 * @example
 * ```ts
 * throw new InputError(`model.safetensors: header length 9000 runs past the end of the file (812 bytes)`);
 * ```
 */
export class InputError extends Error {
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number;

  /** Create an input error; `exitCode` defaults to 2. */
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "InputError";
    this.exitCode = options.exitCode ?? 2;
  }
}

/**
 * The first line of an error's message (of `String(error)` for a non-Error), for the one-line
 * messages the CLI prints.
 *
 * @example
 * ```ts
 * firstLineOf(new Error("cannot read\n  at …")); // "cannot read"
 * ```
 */
export function firstLineOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/** True when `error` is an {@linkcode InputError}. */
export function isInputError(error: unknown): error is InputError {
  return error instanceof InputError;
}

/** Edit distance between two strings (insertions, deletions, substitutions). */
export function levenshtein(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(up + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/**
 * Up to `limit` candidates close to `name`, nearest first: an edit distance of at most
 * max(2, ⌊|name|/3⌋), or (for names of 3+ characters) one containing the other, ignoring case.
 * Registries use it for "did you mean" hints.
 *
 * @example
 * ```ts
 * nearMatches("snapvk", ["snapkv", "h2o"]); // ["snapkv"]
 * ```
 */
export function nearMatches(name: string, candidates: Iterable<string>, limit = 3): string[] {
  const lower = name.toLowerCase();
  const maxDistance = Math.max(2, Math.floor(name.length / 3));
  return [...candidates]
    .map((c) => ({ c, d: levenshtein(lower, c.toLowerCase()) }))
    .filter(({ c, d }) =>
      d <= maxDistance ||
      (lower.length >= 3 && (c.toLowerCase().includes(lower) || lower.includes(c.toLowerCase())))
    )
    .sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : x.c > y.c ? 1 : 0))
    .slice(0, limit)
    .map(({ c }) => c);
}
