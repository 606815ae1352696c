/**
 * Debian's chromium for the browser tests, driven by playwright-core (which downloads no browser of
 * its own). Chromium is a system package here: a missing browser is a setup problem that fails the
 * run with the command that installs it, never a skip.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export function requireChromium(): void {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `${CHROMIUM_PATH} is missing: the browser tests need Debian's chromium. Install it with \`bash scripts/setup.sh --browser\` (or \`apt-get update && apt-get install -y chromium\`).`,
    );
  }
}

/** Headless, unsandboxed (CI containers run as root) and quiet on the network beyond the page's own. */
export function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
