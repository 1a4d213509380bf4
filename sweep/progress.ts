/**
 * Progress of a sweep, driven by finished work units (never by a timer: onnxruntime blocks
 * the JS thread while it runs). On a terminal it redraws one line; elsewhere (pipes, CI=true)
 * it prints a plain line at most every few seconds and at the end.
 *
 * @module
 */

/** A progress display. */
export class Progress {
  readonly #total: number;
  readonly #tty: boolean;
  readonly #start = performance.now();
  #done = 0;
  #lastPrint = 0;

  constructor(total: number, options: { tty?: boolean } = {}) {
    this.#total = total;
    this.#tty = options.tty ??
      (Deno.stdout.isTerminal() && Deno.env.get("CI") !== "true");
  }

  /** Count `units` as finished (skipped units count too) and show `current`. */
  tick(current: string, units = 1): void {
    this.#done += units;
    const now = performance.now();
    const finished = this.#done >= this.#total;
    if (!this.#tty && !finished && now - this.#lastPrint < 3000) return;
    this.#lastPrint = now;
    const elapsed = (now - this.#start) / 1000;
    const eta = this.#done > 0 ? (elapsed / this.#done) * (this.#total - this.#done) : NaN;
    const line = `[${this.#done}/${this.#total}] ${formatSeconds(elapsed)} elapsed, ETA ${
      Number.isFinite(eta) ? formatSeconds(eta) : "?"
    } · ${current}`;
    if (this.#tty) {
      const width = Deno.consoleSize?.().columns ?? 100;
      Deno.stdout.writeSync(new TextEncoder().encode(`\r\x1b[2K${line.slice(0, width - 1)}`));
      if (finished) Deno.stdout.writeSync(new TextEncoder().encode("\n"));
    } else {
      console.log(line);
    }
  }
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, "0")}s`;
}
