import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';

/** Debian's chromium package: the browser tests drive it; nothing is downloaded by them. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless Debian Chromium through playwright-core. Throws with the install command when the
 * package is missing (the tests install nothing themselves).
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need the Debian chromium package (apt-get install -y chromium). Nothing is installed by the tests.`);
  }
  // Loaded here, not at the top: most users of @janus/testing never open a browser.
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page whose requests to anything but 127.0.0.1 are aborted, with the list of what it tried. */
export interface OfflinePage {
  readonly page: Page;
  /** URLs the page tried to load from elsewhere (each was aborted). */
  readonly blocked: readonly string[];
  /** Console errors and uncaught exceptions of the page (CSP violations show up here). */
  readonly errors: readonly string[];
  /** Saves a full-page screenshot to `screenshotFile`, closes the page, and returns what went wrong. */
  finish(screenshotFile: string): Promise<{ blocked: readonly string[]; errors: readonly string[] }>;
}

/**
 * Opens a page that can reach only 127.0.0.1, as on a machine without internet: a page that
 * depends on a CDN fails on it, `blocked` names what it tried to fetch, and `errors` collects what
 * went wrong in the page. `finish()` saves a screenshot and closes it.
 */
export async function openOfflinePage(browser: Browser, viewport = { width: 1400, height: 900 }): Promise<OfflinePage> {
  const context = await browser.newContext({ viewport });
  const blocked: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {
      // not a URL with a host (data:, about:): nothing leaves the machine
      return route.continue();
    }
    if (host === '127.0.0.1' || host === '') return route.continue();
    blocked.push(url);
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  const finish = async (screenshotFile: string) => {
    await mkdir(path.dirname(screenshotFile), { recursive: true });
    await page.screenshot({ path: screenshotFile, fullPage: true });
    await context.close();
    return { blocked, errors };
  };
  return { page, blocked, errors, finish };
}
