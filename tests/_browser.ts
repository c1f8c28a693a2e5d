/**
 * Headless Chromium for the browser tests: Debian's `chromium` driven by npm `playwright-core`
 * (`npx playwright install` cannot download a browser here). One launch helper for every test
 * that needs a page, so that they all start the browser the same way.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { CHROMIUM, chromiumMissing } from "./_probes.ts";

export { CHROMIUM };

/** The flags Chromium is started with: headless, no sandbox (root), nothing phoning home. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why browser tests are skipped, or false when Chromium is there. */
export const browserSkip: string | false = chromiumMissing();

/** A running browser with one page, and how to stop it. */
export interface BrowserSession {
  /** The browser's context (its profile is a fresh, empty directory). */
  context: BrowserContext;
  /** A page, opened blank. */
  page: Page;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium with an empty profile (`--user-data-dir` in a fresh temporary
 * directory) and opens a page. Console errors of the page are collected in `errors`.
 */
export async function launchBrowser(
  errors: string[] = [],
  viewport = { width: 1280, height: 900 },
): Promise<BrowserSession> {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "gibbs-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport,
      timeout: 60_000,
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return {
    context,
    page,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
