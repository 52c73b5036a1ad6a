// Benchmark scenario (bench/bench_viz.py; figures, never a verdict): through a hub, in a notebook whose first cell
// imports the libraries (timed on its own), the time from running the cell that opens a tiled map of a large COG to
// the first tile drawn, then every tile's latency over a scripted pan and zoom across five zoom levels (--map); or the
// time from running the cell that shows a DEM in 3D to the first frame in which a tenth of the view differs from its
// background (--dem).
//
// node bench_viz.mjs --url HUB_URL --token PASSWORD --user NAME (--map NOTEBOOK | --dem NOTEBOOK) --out DIR
import { StepError, Scenario, dismissDialogs, parseArgs, pngDifference } from "./lib.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const TILE = /\/proxy\/\d+\/api\/tiles\/(\d+)\//;

async function openNotebook(scenario, page, base, notebook) {
  await page.goto(`${scenario.args.url}${base}lab/tree/${notebook}`, { waitUntil: "domcontentloaded" });
  await page.locator(".jp-NotebookPanel .jp-CodeCell").first().waitFor({ state: "visible", timeout: 110_000 });
  await page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first()
    .waitFor({ state: "attached", timeout: 110_000 }).catch(() => {});
  await sleep(2000); // the kernel's first idle
}

// Run the notebook's cell `index` (Shift+Enter in it); resolves when the cell has run (its prompt shows a number).
async function runCell(page, index, live) {
  const cell = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(index);
  await cell.locator(".jp-InputArea-editor").click();
  await page.keyboard.press("Shift+Enter");
  return async () => {
    for (;;) {
      live();
      if (/\[\d+\]/.test(await cell.locator(".jp-InputPrompt").innerText())) return;
      await sleep(100);
    }
  };
}

// Wait until no tile request has been pending or finished for `quiet` ms.
async function tilesSettled(pending, lastDone, quiet, live) {
  for (;;) {
    live();
    if (pending.size === 0 && Date.now() - lastDone.t > quiet) return;
    await sleep(100);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const base = `/user/${args.user}/`;
  const scenario = new Scenario("bench_viz", args);
  const tiles = [];
  const pending = new Set();
  const lastDone = { t: Date.now() };
  let page;
  try {
    const context = await scenario.launch();
    context.on("request", (request) => {
      if (TILE.test(request.url())) pending.add(request);
    });
    const done = (request, status, source) => {
      const match = TILE.exec(request.url());
      if (!match) return;
      pending.delete(request);
      lastDone.t = Date.now();
      const timing = request.timing();
      // ms: from the request's start to the last byte; queued: until it was sent (the browser's 6 connections to a
      // host); wait: sent to first byte (proxies and the tile's making); download: first to last byte; source: the
      // tile server's x-vre-tile, "made" for this request or "cache" (made before it was asked for, or asked before)
      tiles.push({ z: Number(match[1]), status, source, ms: timing.responseEnd, phase: scenario.phase,
                   queued: timing.requestStart, wait: timing.responseStart - timing.requestStart,
                   download: timing.responseEnd - timing.responseStart });
    };
    context.on("requestfinished", async (request) => {
      const response = await request.response();
      done(request, response?.status() ?? 0, response?.headers()["x-vre-tile"] ?? null);
    });
    context.on("requestfailed", (request) => done(request, 0));
    page = await context.newPage();

    await scenario.step("log in", 120, "the hub's login did not lead to JupyterLab", async () => {
      await page.goto(`${args.url}/hub/login`, { waitUntil: "domcontentloaded" });
      await page.locator("input[name=username]").fill(args.user);
      await page.locator("input[name=password]").fill(args.token);
      await Promise.all([page.waitForURL(new RegExp(`${base}lab`), { timeout: 110_000 }),
                         page.locator("input[type=submit], button[type=submit]").first().click()]);
    });
    await dismissDialogs(scenario, page, 2);

    if (args.map) {
      await scenario.step("first tile of the large COG", 300, "no tile was drawn", async (live) => {
        await openNotebook(scenario, page, base, args.map);
        let started = Date.now();
        await (await runCell(page, 0, live))();
        scenario.facts.mapImportSeconds = (Date.now() - started) / 1000;
        scenario.phase = "open";
        started = Date.now();
        await runCell(page, 1, live);
        for (;;) {
          live();
          if (await page.locator(".leaflet-container img.leaflet-tile-loaded").count()) break;
          await sleep(25);
        }
        scenario.facts.firstTileSeconds = (Date.now() - started) / 1000;
        await tilesSettled(pending, lastDone, 1000, live);
        await scenario.screenshot(page, "bench-map");
      });

      await scenario.step("pan and zoom across five zoom levels", 900, "the scripted pan and zoom stalled", async (live) => {
        const map = page.locator(".jp-NotebookPanel .leaflet-container").first();
        await map.scrollIntoViewIfNeeded();
        const box = await map.boundingBox();
        const cx = box.x + box.width / 2;
        const cy = box.y + box.height / 2;
        // drags of a third of the map: east, south, west, north (what a user's mouse does)
        const drags = [[-1, 0], [0, -1], [1, 0], [0, 1]].map(([dx, dy]) => [dx * box.width / 3, dy * box.height / 3]);
        for (let level = 0; level < 5; level += 1) {
          scenario.phase = `zoom${level}`;
          // one level in first: the map opens with the whole raster in view, where a drag asks for no new tile
          await map.locator(".leaflet-control-zoom-in").click();
          await tilesSettled(pending, lastDone, 600, live);
          for (const [dx, dy] of drags) {
            await page.mouse.move(cx, cy);
            await page.mouse.down();
            await page.mouse.move(cx + dx, cy + dy, { steps: 8 });
            await page.mouse.up();
            await tilesSettled(pending, lastDone, 600, live);
          }
        }
        scenario.facts.zoomLevels = [...new Set(tiles.filter((t) => t.phase?.startsWith("zoom")).map((t) => t.z))];
        if (scenario.facts.zoomLevels.length < 5) {
          throw new StepError(`tiles of ${scenario.facts.zoomLevels.length} zoom levels, not 5`);
        }
        await scenario.screenshot(page, "bench-map-zoomed");
      });
    }

    if (args.dem) {
      await scenario.step("first 3D frame of the DEM", 300, "the 3D view never drew the DEM", async (live) => {
        await openNotebook(scenario, page, base, args.dem);
        let started = Date.now();
        await (await runCell(page, 0, live))();
        scenario.facts.demImportSeconds = (Date.now() - started) / 1000;
        started = Date.now();
        await runCell(page, 1, live);
        const frame = page.locator(".jp-NotebookPanel iframe.pyvista").first();
        await frame.waitFor({ state: "visible", timeout: 290_000 });
        scenario.facts.viewShownSeconds = (Date.now() - started) / 1000;
        // drawn: a tenth of the view's middle differs from its background (a blank or loading view is one colour;
        // the middle leaves out the view's toolbar and anything JupyterLab shows over the page's corners)
        await frame.scrollIntoViewIfNeeded();
        for (;;) {
          live();
          const box = await frame.boundingBox();
          const middle = { x: box.x + box.width / 4, y: box.y + box.height / 4, width: box.width / 2, height: box.height / 2 };
          if ((await pngDifference(page, await page.screenshot({ clip: middle }))) > 0.1) break;
          await sleep(200);
        }
        scenario.facts.first3dFrameSeconds = (Date.now() - started) / 1000;
        await sleep(1000);
        await scenario.screenshot(page, "bench-3d");
        // the view alone (the page's screenshot shows only what is scrolled into the window)
        const view = `${args.out}/bench-3d-view.png`;
        await frame.screenshot({ path: view });
        scenario.screenshots.push(view);
      });
    }

    scenario.facts.tiles = tiles;
    return await scenario.finish(null);
  } catch (err) {
    scenario.facts.tiles = tiles;
    return await scenario.finish(err, [page]);
  }
}

process.exit(await main());
