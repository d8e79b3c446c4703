// page.mjs - the web page of 'simile serve' in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core): pick a photo, see the query
// and its matches with similarity bars, add it as a new item, find it,
// delete it from the gallery view (refused with a wrong token, done with the
// right one).
//
//   node tests/e2e/page.mjs URL TOKEN QUERY_IMAGE NEW_IMAGE SCREENSHOT.png
//
// Prints one "ok ..." line per step; exits 1 with "FAIL ..." on the first
// failure. Run by tests/test_browser.sh, which starts the server.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, token, query, fresh, shot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "simile-chromium-"));
let ctx;
const step = (s) => console.log("ok   " + s);
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    viewport: { width: 1180, height: 860 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { timeout: 15000 });
  await page.waitForFunction(() => /items/.test(document.getElementById("status").textContent), null, { timeout: 10000 });
  const n0 = await page.locator("#gallery .card").count();
  if (n0 < 1) throw new Error("the gallery view shows no items");
  step(`page loaded: ${await page.textContent("#status")}; gallery shows ${n0} thumbnails`);

  await page.setInputFiles("#file", query);
  await page.waitForSelector("#results .card", { timeout: 10000 });
  const first = await page.textContent("#results .card .lab");
  const bars = await page.locator("#results .bar").count();
  const qshown = await page.evaluate(() => { const i = document.getElementById("qimg"); return !i.hidden && i.naturalWidth > 0; });
  if (!qshown) throw new Error("the query image is not shown");
  if (first !== "bag") throw new Error(`best match is '${first}', expected 'bag'`);
  if (bars < 1) throw new Error("no similarity bars");
  await page.waitForFunction(() => [...document.querySelectorAll("#results img")].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 10000 });
  step(`search: best match '${first}', ${bars} results with bars and thumbnails; ${await page.textContent("#answer")}`);

  await page.setInputFiles("#file", fresh);
  await page.waitForSelector("#results .card", { timeout: 10000 });
  await page.fill("#token", token);
  await page.fill("#label", "sneaker-new");
  await page.click("#add");
  await page.waitForFunction(() => /added item/.test(document.getElementById("msg").textContent), null, { timeout: 10000 });
  step(`add as new item: ${await page.textContent("#msg")}`);
  await page.waitForFunction(() => {
    const l = document.querySelector("#results .card .lab");
    return l && l.textContent === "sneaker-new";
  }, null, { timeout: 10000 });
  const inGallery = await page.locator("#gallery .card .lab", { hasText: "sneaker-new" }).count();
  if (inGallery !== 1) throw new Error("the new item is not in the gallery view");
  await page.waitForFunction(() => [...document.querySelectorAll("img")].every((i) => i.hidden || (i.complete && i.naturalWidth > 0)), null, { timeout: 10000 });
  step("the new item is found first by its own photo and shows in the gallery view");
  if (errors.length) throw new Error("JavaScript errors: " + errors.join("; "));
  await page.screenshot({ path: shot, fullPage: true });
  step(`screenshot: ${shot}`);

  // delete it from the gallery view: the page asks first, sends the token
  const n1 = await page.locator("#gallery .card").count();
  const del = page.locator("#gallery .card", { has: page.locator(".lab", { hasText: "sneaker-new" }) }).locator("button.del");
  let asked = "";
  page.on("dialog", (d) => { asked = d.message(); d.accept(); });
  await page.fill("#token", "wrong-token");
  await del.click();
  await page.waitForFunction(() => /delete failed/.test(document.getElementById("msg").textContent), null, { timeout: 10000 });
  if ((await page.locator("#gallery .card").count()) !== n1) throw new Error("a delete with a wrong token changed the gallery");
  step(`delete with a wrong token refused: ${await page.textContent("#msg")}`);
  await page.fill("#token", token);
  await del.click();
  await page.waitForFunction(() => /deleted item/.test(document.getElementById("msg").textContent), null, { timeout: 10000 });
  await page.waitForFunction((n) => document.querySelectorAll("#gallery .card").length === n, n1 - 1, { timeout: 10000 });
  if (!/Delete item #\d+ \(sneaker-new\)/.test(asked)) throw new Error(`no confirmation asked (dialog '${asked}')`);
  const left = await page.locator("#gallery .card .lab", { hasText: "sneaker-new" }).count();
  const id = (await page.textContent("#msg")).match(/#(\d+)/)[1];
  const gone = await page.evaluate(async (i) => (await fetch("/v1/items/" + i)).status, id);
  if (left !== 0 || gone !== 404) throw new Error(`item #${id} still there (cards ${left}, GET ${gone})`);
  step(`delete after confirmation: ${await page.textContent("#msg")}; ${n1 - 1} cards, GET /v1/items/${id} is 404`);
  if (errors.length) throw new Error("JavaScript errors: " + errors.join("; "));
} catch (e) {
  console.log("FAIL " + (e && e.message ? e.message.split("\n")[0] : e));
  process.exitCode = 1;
} finally {
  if (ctx) await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
