/**
 * Opening a report in headless Chromium (Debian's `chromium` package) through playwright-core,
 * for the browser test and the docs screenshot. Playwright never downloads a browser here: it
 * is always given the system executable.
 *
 * Under Deno, importing playwright-core needs one detour: its bundled `is-wsl` probes
 * `/proc/sys/fs/binfmt_misc/WSLInterop` when the module loads, and Deno lets a program touch
 * `/proc/sys/**` only with `--allow-all`. `is-wsl`'s own `__IS_WSL_TEST__` switch defers that
 * probe to a function that only playwright's "open in the default browser" helper calls (never
 * used here), so with the switch set for the import, `--allow-read --allow-write --allow-env
 * --allow-run --allow-sys` (what `deno task test` grants) are enough. No `--allow-net`: the
 * browser is driven over a pipe, not a socket.
 *
 * @module
 */

import type { BrowserContext } from "playwright-core";

/** Where Debian's package puts Chromium; EVICTBENCH_CHROMIUM overrides it. */
export function chromiumPath(): string {
  return Deno.env.get("EVICTBENCH_CHROMIUM") ?? "/usr/bin/chromium";
}

/** Whether the Chromium executable is there. */
export function hasChromium(path = chromiumPath()): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Flags that work as root on a bare headless machine, with no traffic of the browser's own. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function importPlaywright(): Promise<typeof import("playwright-core")> {
  const key = "__IS_WSL_TEST__";
  const before = Deno.env.get(key);
  Deno.env.set(key, "1");
  try {
    return await import("playwright-core");
  } finally {
    if (before === undefined) Deno.env.delete(key);
    else Deno.env.set(key, before);
  }
}

/** One figure of the report as the browser laid it out. */
export interface RenderedChart {
  id: string;
  /** Number of `<svg>` elements in the figure (1 when it rendered). */
  svgs: number;
  /** Drawn size of the figure's SVG in CSS pixels. */
  width: number;
  height: number;
  /** The SVG's own width (its `width` attribute); above `width` when the page scaled it down. */
  intrinsicWidth: number;
  /** Data marks drawn, per Vega mark type (`line`, `symbol`, `rect`, `area`, …). */
  marks: Record<string, number>;
}

/** What the browser saw while opening a report. */
export interface ReportVisit {
  charts: RenderedChart[];
  consoleErrors: string[];
  pageErrors: string[];
  /** Every request after the page's own file:// navigation (there should be none). */
  requests: string[];
  /** The full-page screenshot's path, when one was asked for. */
  screenshot?: string;
  /** Page height in CSS pixels. */
  pageHeight: number;
}

/** Options of {@linkcode visitReport}. */
export interface VisitOptions {
  /** Write a full-page PNG screenshot here. */
  screenshot?: string;
  /** Viewport width in CSS pixels (default 1100). */
  width?: number;
  /** Device scale factor of the screenshot (default 1). */
  scale?: number;
  /** Chromium executable (default {@linkcode chromiumPath}). */
  executablePath?: string;
}

/**
 * Open `htmlPath` from file:// in a fresh headless Chromium profile, record console errors,
 * page errors and network requests, measure each figure's SVG and count its data marks.
 */
export async function visitReport(
  htmlPath: string,
  options: VisitOptions = {},
): Promise<ReportVisit> {
  const { chromium } = await importPlaywright();
  const profile = await Deno.makeTempDir({ prefix: "evictbench-chromium-" });
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: options.executablePath ?? chromiumPath(),
      args: [...CHROMIUM_ARGS],
      viewport: { width: options.width ?? 1100, height: 800 },
      deviceScaleFactor: options.scale ?? 1,
      offline: true,
      timeout: 60_000,
    });
    const url = new URL(`file://${await Deno.realPath(htmlPath)}`).href;
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    const requests: string[] = [];
    let navigated = false;
    context.on("request", (request) => {
      if (!navigated && request.isNavigationRequest() && request.url() === url) {
        navigated = true;
        return;
      }
      requests.push(`${request.method()} ${request.url()}`);
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(url, { waitUntil: "load", timeout: 60_000 });
    const charts = await page.$$eval("figure", (figures) =>
      figures.map((figure) => {
        const svg = figure.querySelector("svg");
        const box = svg?.getBoundingClientRect();
        const marks: Record<string, number> = {};
        for (const group of figure.querySelectorAll("svg g.role-mark")) {
          const type = [...group.classList].find((c) => c.startsWith("mark-"))?.slice(5) ??
            "unknown";
          const drawn = group.querySelectorAll("path, rect, line, text, circle").length;
          marks[type] = (marks[type] ?? 0) + drawn;
        }
        return {
          id: figure.id,
          svgs: figure.querySelectorAll("svg").length,
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          intrinsicWidth: Number(svg?.getAttribute("width") ?? 0),
          marks,
        };
      }));
    const pageHeight = await page.$eval("html", (html) => html.scrollHeight);
    if (options.screenshot !== undefined) {
      await page.screenshot({ path: options.screenshot, fullPage: true, animations: "disabled" });
    }
    return {
      charts,
      consoleErrors,
      pageErrors,
      requests,
      screenshot: options.screenshot,
      pageHeight,
    };
  } finally {
    await context?.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}
