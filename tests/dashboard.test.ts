/**
 * The live dashboard in headless Chromium: served by the gateway at `/`, it shows the right
 * worker count as workers join and leave and the request count after a burst, lists the
 * workers, and loads nothing from anywhere but the hub.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { gatewayHandler } from "../src/cli/gateway.ts";
import { DASHBOARD_HTML } from "../src/cli/dashboard_page.ts";
import { runtime } from "../src/transport/runtime.ts";
import { browserSkip, launchBrowser } from "./_browser.ts";
import { Cleanup, startHub, startWorker, waitFor, withTimeout } from "./_helpers.ts";

test("the page has no reference to anything outside the hub", { timeout: 120_000 }, () => {
  // The only URL in it is the SVG namespace, a name rather than something fetched.
  const urls = DASHBOARD_HTML.match(/\b(?:https?:)?\/\/[^\s"')]+/g) ?? [];
  assert.deepEqual([...new Set(urls)], ["http://www.w3.org/2000/svg"]);
  // No favicon request either: the icon is an empty data: URL.
  assert.doesNotMatch(DASHBOARD_HTML, /<script[^>]+src=|<link[^>]+href="(?!data:)|@import|url\(/);
});

test("dashboard in Chromium: workers join and leave, a burst of requests is counted", {
  skip: browserSkip,
  timeout: 120_000,
}, async () => {
  const c = new Cleanup();
  try {
    const { hub, endpoint } = await startHub();
    c.add(() => hub.close());
    const server = await runtime.serveHttp("127.0.0.1", 0, gatewayHandler(hub));
    c.add(() => server.close());
    const origin = `http://127.0.0.1:${server.port}`;
    const errors: string[] = [];
    const session = await launchBrowser(errors);
    c.add(() => session.close());
    const { page } = session;
    const fetched: string[] = [];
    page.on("request", (request) => fetched.push(request.url()));

    /** Waits until the element `testid` shows `text`; says what it showed otherwise. */
    const shows = async (testid: string, text: string, what: string) => {
      const selector = `[data-testid="${testid}"]`;
      try {
        // A string: the function runs in the page, and the tests are type-checked without DOM types.
        await page.waitForFunction(
          `document.querySelector(${JSON.stringify(selector)})?.textContent === ${
            JSON.stringify(text)
          }`,
          undefined,
          { timeout: 15_000, polling: 50 },
        );
      } catch {
        const shown = await page.textContent(selector).catch(() => "?");
        assert.fail(`${what}: ${testid} shows "${shown}", expected "${text}"`);
      }
    };
    const rows = () => page.locator('[data-testid="workers-table"] tbody tr td.id').count();

    await withTimeout(page.goto(`${origin}/?interval=200`), 30_000, "page load");
    assert.equal(await page.title(), "gibbs hub");
    await shows("workers-count", "0", "no worker yet");

    const workers = [0, 1, 2].map(() => startWorker((x: number) => x + 1, endpoint));
    for (const w of workers) c.add(() => w.stop());
    await waitFor(() => hub.workers === 3, 10_000, "3 workers connected");
    await shows("workers-count", "3", "three workers joined");
    assert.equal(await rows(), 3);
    const cells = page.locator('[data-testid="workers-table"] td.id');
    const ids: string[] = [];
    for (let i = 0; i < await cells.count(); i++) {
      ids.push(await cells.nth(i).getAttribute("title") ?? "");
    }
    assert.deepEqual(ids.sort(), workers.map((w) => w.worker.id).sort());

    await workers[0].stop();
    await waitFor(() => hub.workers === 2, 10_000, "one worker left");
    await shows("workers-count", "2", "one worker left");
    assert.equal(await rows(), 2);

    const burst = 250;
    const results = await withTimeout(
      Promise.all(Array.from({ length: burst }, (_, i) => hub.request(i))),
      20_000,
      "the burst",
    );
    assert.deepEqual(results, Array.from({ length: burst }, (_, i) => i + 1));
    await shows("requests-total", String(burst), "after the burst");
    await shows("errors-total", "0", "after the burst");
    const events = await page.locator('[data-testid="events-table"] td.type').allTextContents();
    assert.equal(events.filter((t) => t === "worker.joined").length, 3);
    assert.equal(events.filter((t) => t === "worker.left").length, 1);

    assert.deepEqual(errors, [], "no error in the page's console");
    const elsewhere = fetched.filter((url) => !url.startsWith(origin));
    assert.deepEqual(elsewhere, [], "the page fetched only from the hub");
    assert.ok(fetched.some((url) => url.startsWith(`${origin}/status`)));
  } finally {
    await c.run();
  }
});
