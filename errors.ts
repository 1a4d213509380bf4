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

/** True when `error` is an {@linkcode InputError}. */
export function isInputError(error: unknown): error is InputError {
  return error instanceof InputError;
}
