// The scientist's day through a hub: log in, run the notebook (EODAG search of a local STAC catalog, one band read,
// NDVI with OTB, a tile map, a DEM in 3D), commit it with git, open it as a Voila dashboard.
//
// node day.mjs --url HUB_URL --token PASSWORD --user NAME --notebook PATH --out DIR
// Writes DIR/day-result.json (and prints it as the last line); exit 0 when every step passed. Facts: every tile
// request through the hub (status, bytes, whether its pixels are empty), the 3D views' difference from an empty
// one, the commit, the dashboard's tiles.
import { StepError, Scenario, dismissDialogs, parseArgs, pngDifference } from "./lib.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const TILE = /\/proxy\/\d+\/api\/tiles\//;

// Pixels of the loaded map tiles, drawn on a canvas (same origin: not tainted): how many have visible, varied pixels.
async function tilePixels(page) {
  return page.evaluate(() => {
    const tiles = [...document.querySelectorAll(".leaflet-container img.leaflet-tile-loaded")];
    return tiles.map((img) => {
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let visible = 0;
      const colours = new Set();
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 0) {
          visible += 1;
          colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        }
      }
      return { src: new URL(img.src).pathname, visible, colours: colours.size };
    });
  });
}

async function waitForTiles(page, live, seconds, where) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    live();
    const tiles = await tilePixels(page);
    if (tiles.some((t) => t.visible > 0 && t.colours > 1)) {
      await sleep(1500); // the rest of the visible tiles
      return tilePixels(page);
    }
    if (Date.now() > deadline) {
      throw new StepError(`${where}: no map tile with visible pixels (tiles: ${JSON.stringify(tiles.slice(0, 6))})`);
    }
    await sleep(1000);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const user = args.user;
  const base = `/user/${user}/`;
  const scenario = new Scenario("day", args);
  const tiles = [];
  let lab;
  let voila;
  try {
    const context = await scenario.launch();
    scenario.recordOutside(args.url);
    context.on("response", async (response) => {
      const url = new URL(response.url());
      if (!TILE.test(url.pathname)) return;
      const body = await response.body().catch(() => Buffer.alloc(0));
      tiles.push({ path: url.pathname, status: response.status(), bytes: body.length,
                   type: response.headers()["content-type"] || "" });
    });
    lab = await context.newPage();

    await scenario.step("log in to the hub", 120, "the hub's login did not lead to JupyterLab", async () => {
      await lab.goto(`${args.url}/hub/login`, { waitUntil: "domcontentloaded" });
      await lab.locator("input[name=username]").fill(user);
      await lab.locator("input[name=password]").fill(args.token);
      await Promise.all([lab.waitForURL(new RegExp(`${base}lab`), { timeout: 110_000 }),
                         lab.locator("input[type=submit], button[type=submit]").first().click()]);
      await lab.locator(".jp-Launcher, .jp-NotebookPanel").first().waitFor({ state: "visible", timeout: 110_000 });
    });
    await dismissDialogs(scenario, lab);

    await scenario.step("open the notebook", 120, "the notebook did not open with an idle kernel", async () => {
      await lab.goto(`${args.url}${base}lab/tree/${args.notebook}`, { waitUntil: "domcontentloaded" });
      await lab.locator(".jp-NotebookPanel .jp-Cell").first().waitFor({ state: "visible", timeout: 110_000 });
      await lab.locator(".jp-NotebookPanel [data-status='idle'], .jp-Notebook-ExecutionIndicator[data-status='idle']")
        .first().waitFor({ state: "attached", timeout: 110_000 }).catch(() => {});
    });
    await dismissDialogs(scenario, lab, 2);

    await scenario.step("run all cells", 420, "the notebook's cells did not all run", async (live) => {
      await lab.locator(".lm-MenuBar-itemLabel", { hasText: /^Run$/ }).click();
      await lab.locator(".lm-Menu-itemLabel", { hasText: /^Run All Cells$/ }).click();
      const cells = lab.locator(".jp-NotebookPanel .jp-CodeCell");
      const count = await cells.count();
      for (;;) {
        live();
        const prompts = await cells.locator(".jp-InputPrompt").allInnerTexts();
        const errors = await lab.locator(".jp-NotebookPanel .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
          .allInnerTexts();
        const traceback = errors.find((e) => /Traceback|Error/.test(e));
        if (traceback) throw new StepError(`a cell failed: ${traceback.slice(0, 1500)}`);
        if (prompts.length === count && prompts.every((p) => /\[\d+\]/.test(p))) break;
        await sleep(1000);
      }
      scenario.facts.cells = count;
    });

    await scenario.step("the NDVI tile map", 180, "the map drew no NDVI tile", async (live) => {
      const map = lab.locator(".jp-NotebookPanel .leaflet-container").first();
      await map.scrollIntoViewIfNeeded();
      scenario.facts.labTiles = await waitForTiles(lab, live, 170, "JupyterLab");
      await scenario.screenshot(lab, "day-map");
    });

    await scenario.step("the DEM in 3D", 240, "the 3D view did not render", async (live) => {
      const frames = lab.locator(".jp-NotebookPanel iframe.pyvista");
      const deadline = Date.now() + 230_000;
      while ((await frames.count()) < 2) {
        live();
        if (Date.now() > deadline) throw new StepError(`${await frames.count()} trame views, expected 2 (terrain, empty)`);
        await sleep(1000);
      }
      scenario.facts.viewSources = await frames.evaluateAll((els) => els.map((e) => e.getAttribute("src")));
      // each view streams the server's frames once its websocket is up: wait for the terrain to differ from the
      // empty view (the same size, rendered by the same server)
      let difference = 0;
      for (;;) {
        live();
        await frames.nth(0).scrollIntoViewIfNeeded();
        const terrain = await frames.nth(0).screenshot();
        await frames.nth(1).scrollIntoViewIfNeeded();
        const empty = await frames.nth(1).screenshot();
        difference = await pngDifference(lab, terrain, empty);
        if (difference > 0.05) break;
        await sleep(2000);
      }
      scenario.facts.view3dDifference = difference;
      await frames.nth(0).scrollIntoViewIfNeeded();
      await sleep(1000);
      await scenario.screenshot(lab, "day-3d");
      await frames.nth(1).scrollIntoViewIfNeeded();
      await scenario.screenshot(lab, "day-3d-empty");
    });

    await scenario.step("commit the notebook with git", 120, "the git extension did not commit", async () => {
      await lab.keyboard.press("Control+s");
      await sleep(2000);
      const folder = args.notebook.split("/").slice(0, -1).join("/");
      const answers = await lab.evaluate(async ([base, folder, name]) => {
        const xsrf = document.cookie.split("; ").find((c) => c.startsWith("_xsrf="))?.slice(6) || "";
        const post = async (path, body) => {
          const r = await fetch(`${base}git/${folder}/${path}`, {
            method: "POST", headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf },
            body: JSON.stringify(body || {}) });
          return { path, status: r.status, body: await r.json().catch(() => null) };
        };
        return [await post("init"), await post("add", { add_all: false, filename: name }),
                await post("commit", { commit_msg: "NDVI over the local catalog, map and 3D" }),
                await post("log", { history_count: 5 })];
      }, [base, folder, args.notebook.split("/").pop()]);
      scenario.facts.git = answers.map((a) => ({ path: a.path, status: a.status }));
      const bad = answers.find((a) => a.status !== 200);
      if (bad) throw new StepError(`POST git/${folder}/${bad.path} answered ${bad.status}: ${JSON.stringify(bad.body)}`);
      scenario.facts.commits = answers[3].body.commits.map((c) => c.commit_msg);
      // the git panel, opened after the commit (it looked at the folder before `init`): the history lists it
      await lab.reload({ waitUntil: "domcontentloaded" });
      await lab.locator(".jp-NotebookPanel").first().waitFor({ state: "visible", timeout: 60_000 });
      await lab.locator(".lm-TabBar-tab[data-id='jp-git-sessions']").first().click();
      await lab.getByText("NDVI over the local catalog", { exact: false }).first()
        .waitFor({ state: "visible", timeout: 30_000 });
      await scenario.screenshot(lab, "day-git");
    });

    await scenario.step("the Voila dashboard with its map", 420, "the dashboard showed no map tiles", async (live) => {
      voila = await context.newPage();
      const before = tiles.length;
      await voila.goto(`${args.url}${base}voila/render/${args.notebook}`, { waitUntil: "domcontentloaded",
                                                                           timeout: 400_000 });
      await voila.locator(".leaflet-container").first().waitFor({ state: "visible", timeout: 400_000 });
      await voila.locator(".leaflet-container").first().scrollIntoViewIfNeeded();
      scenario.facts.voilaTiles = await waitForTiles(voila, live, 120, "Voila");
      scenario.facts.voilaTileRequests = tiles.length - before;
      await scenario.screenshot(voila, "day-voila");
    });

    scenario.facts.tiles = tiles;
    return await scenario.finish(null);
  } catch (err) {
    scenario.facts.tiles = tiles;
    return await scenario.finish(err, [lab, voila]);
  }
}

process.exit(await main());
