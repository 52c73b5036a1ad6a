// Shared pieces of the browser scenarios: Chromium launch, named steps with their own deadlines, the result file.
// A scenario never ends in an unexplained timeout: every wait belongs to a step whose failure message says what
// was expected, what the page showed instead, and which screenshot shows it.
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

// The flags every run uses (Debian's chromium, headless, nothing phoning home, a fresh profile).
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--")) throw new Error(`unexpected argument ${argv[i]}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const key of ["url", "token", "out"]) {
    if (!args[key]) throw new Error(`missing --${key}`);
  }
  args.url = args.url.replace(/\/$/, "");
  return args;
}

export class StepError extends Error {}

export class Scenario {
  constructor(name, args) {
    this.name = name;
    this.args = args;
    this.steps = [];
    this.screenshots = [];
    this.facts = {};
    mkdirSync(args.out, { recursive: true });
  }

  async launch() {
    this.profile = mkdtempSync(join(tmpdir(), "vre-chromium-"));
    this.context = await chromium.launchPersistentContext(this.profile, {
      executablePath: this.args.chromium || "/usr/bin/chromium",
      headless: true,
      // the fresh profile directory is Chromium's --user-data-dir (playwright passes it)
      args: CHROMIUM_FLAGS,
      viewport: { width: 1440, height: 900 },
      timeout: 60_000,
    });
    this.context.setDefaultTimeout(30_000);
    return this.context;
  }

  // Record in facts.outside every request the browser makes to another host than `url`'s (a CDN, an online basemap,
  // a font service): the scenarios check that nothing leaves the machine.
  recordOutside(url) {
    const host = new URL(url).host;
    const outside = (this.facts.outside = []);
    this.context.on("request", (request) => {
      const target = new URL(request.url());
      if (/^https?:$|^wss?:$/.test(target.protocol) && target.host !== host) outside.push(request.url());
    });
  }

  // Run one named step; a step that overruns `seconds` fails with `expect`. `fn` gets `live()`, which its polling
  // loops call: it throws once the step has expired, so that nothing keeps polling behind a failed step.
  async step(name, seconds, expect, fn) {
    const started = Date.now();
    const record = { name, ok: false, seconds: 0 };
    this.steps.push(record);
    let timer;
    let expired = false;
    const live = () => {
      if (expired) throw new StepError(`step "${name}" expired`);
    };
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        reject(new StepError(`${expect} (no result within ${seconds} s)`));
      }, seconds * 1000);
    });
    try {
      const value = await Promise.race([fn(live), timeout]);
      record.ok = true;
      return value;
    } catch (err) {
      record.error = err instanceof StepError ? err.message : `${err.name}: ${err.message}`;
      throw new StepError(`step "${name}" failed: ${record.error}`);
    } finally {
      expired = true;
      clearTimeout(timer);
      record.seconds = Math.round((Date.now() - started) / 100) / 10;
    }
  }

  async screenshot(page, name) {
    const path = join(this.args.out, `${name}.png`);
    await page.screenshot({ path, fullPage: false, timeout: 30_000 });
    this.screenshots.push(path);
    return path;
  }

  // The container-side probe (runner.py passes `docker exec ...`): JSON state of the X session.
  probe() {
    if (!this.args.probe) return null;
    const cmd = JSON.parse(this.args.probe);
    const out = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8", timeout: 60_000 });
    if (out.status !== 0) return { error: `probe exited ${out.status}: ${(out.stderr || "").slice(-500)}` };
    try {
      return JSON.parse(out.stdout.trim().split("\n").pop());
    } catch (err) {
      return { error: `probe printed no JSON: ${out.stdout.slice(-300)}` };
    }
  }

  async finish(error, pages = []) {
    if (error) {
      for (const [i, page] of pages.filter(Boolean).entries()) {
        try {
          await this.screenshot(page, `${this.name}-failure-${i}`);
        } catch (_) {
          // the page may be gone: the message says why
        }
      }
    }
    const result = {
      scenario: this.name,
      ok: !error,
      error: error ? error.message : null,
      steps: this.steps,
      screenshots: this.screenshots,
      facts: this.facts,
    };
    writeFileSync(join(this.args.out, `${this.name}-result.json`), JSON.stringify(result, null, 2));
    try {
      // a browser that does not close within 20 s is left to process.exit
      await Promise.race([this.context?.close(), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    } catch (_) {
      // closing a crashed browser
    }
    if (this.profile) rmSync(this.profile, { recursive: true, force: true });
    console.log(JSON.stringify(result));
    return result.ok ? 0 : 1;
  }
}

// Open JupyterLab with the token and wait for its launcher; return the page.
export async function openLab(scenario) {
  const page = await scenario.context.newPage();
  await scenario.step("open /lab", 120, "JupyterLab did not show its launcher", async () => {
    const response = await page.goto(`${scenario.args.url}/lab?token=${scenario.args.token}`, {
      waitUntil: "domcontentloaded",
      timeout: 60_000,
    });
    if (!response || response.status() !== 200) {
      throw new StepError(`/lab answered ${response ? response.status() : "nothing"}`);
    }
    await page.locator(".jp-Launcher .jp-LauncherCard").first().waitFor({ state: "visible", timeout: 110_000 });
  });
  await dismissDialogs(scenario, page);
  return page;
}

// JupyterLab extensions may open a modal at startup (e.g. an extension failing to reach the network): note its
// text in the result and close it, as a user would, so that it does not block the launcher.
export async function dismissDialogs(scenario, page, seconds = 4) {
  const deadline = Date.now() + seconds * 1000;
  scenario.facts.labDialogs = scenario.facts.labDialogs || [];
  while (Date.now() < deadline) {
    const dialog = page.locator(".jp-Dialog");
    if (await dialog.count()) {
      const text = (await dialog.first().innerText().catch(() => "")).replace(/\s+/g, " ").slice(0, 300);
      scenario.facts.labDialogs.push(text);
      const accept = dialog.first().locator(".jp-Dialog-button.jp-mod-accept, .jp-Dialog-button").first();
      if (await accept.count()) await accept.click({ timeout: 5_000 }).catch(() => {});
      else await page.keyboard.press("Escape");
      await page.waitForTimeout(500);
      continue;
    }
    await page.waitForTimeout(500);
  }
}

// Click a launcher tile of JupyterLab by its label; return the page it opens (a new tab, or the same one).
export async function openTile(scenario, lab, title, seconds = 60) {
  return scenario.step(`open the "${title}" launcher tile`, seconds, `the "${title}" tile opened nothing`, async () => {
    const cards = lab.locator(".jp-LauncherCard");
    const labels = await cards.locator(".jp-LauncherCard-label").allInnerTexts();
    // a tile that opens a new browser tab is labelled "Title [↗]"
    const index = labels.findIndex((label) => label.replace(/\s*\[[^\]]*\]\s*$/, "").trim() === title);
    if (index < 0) {
      throw new StepError(
        `JupyterLab's launcher has no "${title}" tile (tiles: ${JSON.stringify(labels.map((l) => l.trim()))}); ` +
          "the server-proxy entry that provides it did not load: see the server log",
      );
    }
    const popup = scenario.context.waitForEvent("page", { timeout: 15_000 }).catch(() => null);
    await cards.nth(index).click();
    const page = (await popup) || lab;
    await page.waitForLoadState("domcontentloaded", { timeout: seconds * 1000 });
    return page;
  });
}

// Pixels of PNG screenshots compared in the page (a canvas; the host has no image library): the share of pixels of
// `a` that differ (by more than 30 over R+G+B) from `b`, or from `a`'s top-left pixel (its background) without `b`.
export async function pngDifference(page, a, b = null) {
  return page.evaluate(
    async ([a64, b64]) => {
      const load = (data) =>
        new Promise((resolve, reject) => {
          const img = new Image();
          img.onload = () => resolve(img);
          img.onerror = reject;
          img.src = `data:image/png;base64,${data}`;
        });
      const images = await Promise.all([a64, b64].filter(Boolean).map(load));
      const w = Math.min(...images.map((i) => i.width));
      const h = Math.min(...images.map((i) => i.height));
      const pixels = (img) => {
        const c = document.createElement("canvas");
        c.width = w;
        c.height = h;
        const ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        return ctx.getImageData(0, 0, w, h).data;
      };
      const pa = pixels(images[0]);
      const pb = images[1] ? pixels(images[1]) : null;
      let differ = 0;
      for (let i = 0; i < pa.length; i += 4) {
        const ref = pb ? [pb[i], pb[i + 1], pb[i + 2]] : [pa[0], pa[1], pa[2]];
        if (Math.abs(pa[i] - ref[0]) + Math.abs(pa[i + 1] - ref[1]) + Math.abs(pa[i + 2] - ref[2]) > 30) differ += 1;
      }
      return differ / (w * h);
    },
    [a.toString("base64"), b ? b.toString("base64") : null],
  );
}
