import { assert, assertEquals } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { ResultsStore, writeJsonAtomic } from "../sweep/store.ts";
import { writeReport } from "./render.ts";

Deno.test("the report renders every chart as inline SVG with marks and needs no network", async () => {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(syntheticRows());
  await writeJsonAtomic(`${dir}/run.json`, { config: { title: "</script><b>x" }, backend: "cpu" });
  const files = await writeReport(dir);
  const html = await Deno.readTextFile(files.html);
  assertEquals(files.svgs.length, 5);
  for (const svg of files.svgs) {
    const text = await Deno.readTextFile(svg);
    assert(/class="mark-(line|rect|symbol|area)/.test(text), `${svg} has no marks`);
  }
  assertEquals((html.match(/<svg/g) ?? []).length, 5);
  assert(
    !/<script|<link|src=|url\(/i.test(html.replace(/<svg[\s\S]*?<\/svg>/g, "")),
    "report must not reference external resources",
  );
  assert(!html.includes("</script><b>"), "run metadata must be escaped");
  assert(html.includes("&lt;/script&gt;&lt;b&gt;x"));
  const cells = await Deno.readTextFile(files.cells);
  assert(cells.startsWith("scope,model,method"));
});
