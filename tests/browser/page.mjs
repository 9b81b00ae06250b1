// Drives the page in headless Chromium with a fake microphone that plays a real recording, then
// drops a file on the page and opens the session from the list. Prints what the page showed as
// one JSON object on stdout; tests/server/page.rs checks it against the references.
//
// Environment: BASE_URL, API_KEY, FULL_URL (a server with no room left, no key), LIVE_WAV (fake microphone), LIVE_SECONDS (how long it plays),
// FILE_WAV (dropped on the page), OUT_DIR (screenshot and download); ONLY_LIVE=1 stops after the live capture.

import { chromium } from "playwright-core";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("BASE_URL");
const outDir = env("OUT_DIR");
const onlyLive = Boolean(process.env.ONLY_LIVE);
const liveSeconds = Number(env("LIVE_SECONDS"));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${env("LIVE_WAV")}%noloop`,
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const result = {};

// Waits for the page to go live; on a timeout, says what the page showed instead.
async function waitLive(page) {
  try {
    await page.waitForSelector('#state[data-state="live"]', { timeout: 20000 });
  } catch (e) {
    const state = await page.getAttribute("#state", "data-state").catch(() => "?");
    const alert = await page.textContent("#live-error .alert-text").catch(() => "?");
    const focused = await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    throw new Error(`the page did not go live: state ${state}, alert ${JSON.stringify(alert)}, focus ${focused}: ${e.message}`);
  }
}

try {
  const context = await browser.newContext({ viewport: { width: 900, height: 1100 }, acceptDownloads: true });
  const page = await context.newPage();
  // Uncaught exceptions in the page's scripts (refused requests are logged too, but expected).
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(base + "/");

  // Without the key, the socket is refused and the page says why.
  await page.click("#start");
  await page.waitForSelector("#live-error:not([hidden])", { timeout: 20000 });
  result.refusal = await page.textContent("#live-error .alert-text");

  // With the key: live captions from the fake microphone.
  await page.fill("#key", env("API_KEY"));
  await page.dispatchEvent("#key", "change");
  await page.click("#start");
  await waitLive(page);
  result.session = await page.textContent("#session");
  const levels = [];
  const started = Date.now();
  // Audio the page has streamed so far, in whole seconds (its "m:ss" counter).
  const streamed = async () => {
    const [m, s] = ((await page.textContent("#duration")) || "0:00").split(":").map(Number);
    return m * 60 + s;
  };
  // At least LIVE_SECONDS of wall time, and until the whole recording (a second less) has been
  // streamed: on a loaded machine the fake microphone falls behind the clock, and stopping on
  // the clock alone cut the end of the call off. At most three times as long.
  const playing = async () => {
    const wall = Date.now() - started;
    return wall < liveSeconds * 3000 && (wall < liveSeconds * 1000 || (await streamed()) < liveSeconds - 1);
  };
  while (await playing()) {
    await page.waitForTimeout(500);
    levels.push(Number(await page.getAttribute("#meter", "aria-valuenow")));
  }
  result.max_level = Math.max(...levels);
  await page.click("#start"); // Stop
  await page.waitForSelector('#state[data-state="stopped"]', { timeout: 30000 });
  result.lines = await page.$$eval("#transcript .line", (lines) =>
    lines.map((l) => ({
      speaker: l.dataset.speaker,
      colour: getComputedStyle(l.querySelector(".speaker")).backgroundColor,
      text: l.querySelector(".text").textContent,
      latency: l.querySelector(".latency").textContent,
    })),
  );
  result.page_errors = pageErrors;
  // ONLY_LIVE: the live capture alone (the quiet-audio test); the rest is one run's worth.
  rest: {
  if (onlyLive) break rest;
  await page.screenshot({ path: join(outDir, "page.png"), fullPage: true });

  const [download] = await Promise.all([page.waitForEvent("download"), page.click('#downloads button[data-format="text"]')]);
  const saved = join(outDir, "download.txt");
  await download.saveAs(saved);
  result.download = readFileSync(saved, "utf8");

  // A file dropped on the page goes through the file API.
  const bytes = readFileSync(env("FILE_WAV")).toString("base64");
  const dataTransfer = await page.evaluateHandle((b64) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([raw], "dropped.wav", { type: "audio/wav" }));
    return transfer;
  }, bytes);
  await page.dispatchEvent("#drop", "drop", { dataTransfer });
  await page.waitForSelector("#file-transcript .line", { timeout: 60000 });
  result.file_lines = await page.$$eval("#file-transcript .line", (lines) =>
    lines.map((l) => ({ speaker: l.dataset.speaker, text: l.querySelector(".text").textContent })),
  );

  // A file that is not audio gets a readable error.
  const junk = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new TextEncoder().encode("not audio at all")], "notes.txt", { type: "text/plain" }));
    return transfer;
  });
  await page.dispatchEvent("#drop", "drop", { dataTransfer: junk });
  await page.waitForSelector("#file-error:not([hidden])", { timeout: 20000 });
  result.file_error = await page.textContent("#file-error .alert-text");

  // The session is listed and opens.
  await page.click("#refresh");
  const entry = `#sessions button[data-session="${result.session}"]`;
  await page.waitForSelector(entry, { timeout: 20000 });
  await page.click(entry);
  await page.waitForSelector("#session-view:not([hidden]) #session-transcript .line", { timeout: 20000 });
  result.opened_lines = await page.$$eval("#session-transcript .line .text", (t) => t.map((e) => e.textContent));

  // Phone-sized: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 800 });
  result.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  result.page_errors = pageErrors;
  await page.setViewportSize({ width: 900, height: 1100 });

  // Keyboard: the first stops of the tab order are the skip link, the key field, the start button.
  await page.goto(base + "/");
  const order = [];
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.className));
  }
  result.tab_order = order;

  // A session ended from REST: the page says so and offers to start again.
  await page.keyboard.press("Enter"); // on the start button
  await waitLive(page);
  const ended = await page.textContent("#session");
  const deleted = await page.request.delete(`${base}/sessions/${ended}`, { headers: { Authorization: `Bearer ${env("API_KEY")}` } });
  result.delete_status = deleted.status();
  await page.waitForSelector("#live-error:not([hidden])", { timeout: 20000 });
  result.ended_message = await page.textContent("#live-error .alert-text");
  result.ended_retry = await page.isVisible("#live-error .retry");

  // The microphone refused.
  const denied = await context.newPage();
  await denied.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
  });
  await denied.goto(base + "/");
  await denied.click("#start");
  await denied.waitForSelector("#live-error:not([hidden])", { timeout: 20000 });
  result.denied_message = await denied.textContent("#live-error .alert-text");

  // A server with no room for another stream.
  const full = await context.newPage();
  await full.goto(env("FULL_URL") + "/");
  await full.click("#start");
  await full.waitForSelector("#live-error:not([hidden])", { timeout: 20000 });
  result.full_message = await full.textContent("#live-error .alert-text");
  }
} finally {
  await browser.close();
}
writeFileSync(join(outDir, "result.json"), JSON.stringify(result, null, 2));
process.stdout.write(JSON.stringify(result));
