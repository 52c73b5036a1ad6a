// EODAG's JupyterLab panel, as a user finds products: /lab -> a new notebook -> the EODAG panel -> provider,
// collection and dates chosen, a rectangle drawn on its map -> "Preview results" lists the products -> "Generate
// code" puts the search in the notebook -> the cell runs and prints the products found.
//
// node eodag.mjs --url URL --token TOKEN --out DIR --provider NAME --collection ID --start YYYY-MM-DD --end YYYY-MM-DD
// Writes DIR/eodag-result.json (and prints it as the last line); exit 0 when every step passed. Facts: the products
// listed, the generated code, the cell's output, requests to any other host than the server's.
import { StepError, Scenario, openLab, parseArgs } from "./lib.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Pick `value` in one of the panel's selects (react-select: type, then the matching option).
async function choose(page, select, value) {
  await select.click();
  await page.keyboard.type(value);
  const option = page.locator(".jp-EodagWidget-select__option", { hasText: value }).first();
  await option.waitFor({ state: "visible", timeout: 60_000 }).catch(async () => {
    const offered = await page.locator(".jp-EodagWidget-select__option").allInnerTexts();
    throw new StepError(`no option ${value} in the select (offered: ${JSON.stringify(offered.slice(0, 20))})`);
  });
  await option.click();
}

// The panel's date inputs read the day first (dd/MM/yyyy).
const dayFirst = (iso) => iso.split("-").reverse().join("/");

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const scenario = new Scenario("eodag", args);
  let page;
  try {
    await scenario.launch();
    scenario.recordOutside(args.url);
    page = await openLab(scenario);

    await scenario.step("a new notebook", 120, "the notebook did not open", async () => {
      await page.locator(".jp-LauncherCard[data-category='Notebook']").first().click();
      await page.locator(".jp-NotebookPanel .jp-CodeCell").first().waitFor({ state: "visible", timeout: 110_000 });
    });

    const panel = page.locator(".jp-EodagWidget-products-search");
    await scenario.step("the search form filled, a rectangle drawn", 180, "the EODAG panel could not be filled",
      async () => {
        if (!(await panel.isVisible())) await page.locator(".lm-TabBar-tab[data-id='eodag-widget']").click();
        await panel.waitFor({ state: "visible", timeout: 60_000 });
        const selects = panel.locator(".jp-EodagWidget-select");
        await choose(page, selects.nth(0), args.provider);
        await choose(page, selects.nth(1), args.collection);
        // the collection's parameters loaded (the form re-renders then, dropping dates typed before)
        await panel.locator("button[aria-label='More parameters']:not([disabled])").waitFor({ timeout: 60_000 });
        for (const [placeholder, date] of [["Start", args.start], ["End", args.end]]) {
          const input = panel.locator(`input[placeholder='${placeholder}']`);
          await input.click();
          await page.keyboard.type(dayFirst(date));
          await page.keyboard.press("Enter");
          if ((await input.inputValue()) !== dayFirst(date)) {
            throw new StepError(`the ${placeholder} date shows ${JSON.stringify(await input.inputValue())}, not ${dayFirst(date)}`);
          }
        }
        // the whole world in view (no basemap: the map is blank), then a rectangle over most of it, clear of the
        // map's controls (zoom top left, drawing tools top right)
        const map = panel.locator(".leaflet-container");
        while (await map.locator(".leaflet-control-zoom-out:not(.leaflet-disabled)").count()) {
          await map.locator(".leaflet-control-zoom-out").click();
          await sleep(300);
        }
        await map.locator(".leaflet-draw-draw-rectangle").click();
        const box = await map.boundingBox();
        await page.mouse.move(box.x + 70, box.y + 100);
        await page.mouse.down();
        await page.mouse.move(box.x + box.width - 60, box.y + box.height - 20, { steps: 10 });
        await page.mouse.up();
        if (!(await map.locator(".leaflet-overlay-pane path").count())) throw new StepError("no rectangle on the map");
        await scenario.screenshot(page, "eodag-form");
      });

    await scenario.step("preview the results", 180, "the panel listed no product", async (live) => {
      await panel.locator("button:has-text('Preview results')").click();
      const rows = page.locator(".result_row");
      for (;;) {
        live();
        const dialog = page.locator(".jp-Dialog");
        if (await dialog.count()) {
          throw new StepError(`the panel answered with a dialog: ${(await dialog.first().innerText()).replace(/\s+/g, " ")}`);
        }
        if (await rows.count()) break;
        await sleep(500);
      }
      await sleep(1000); // the modal's map draws the footprints
      scenario.facts.listed = (await page.locator(".result_row").allInnerTexts()).map((t) => t.split("\n")[0].trim());
      await scenario.screenshot(page, "eodag-results");
    });

    await scenario.step("generate the code and run it", 300, "the generated code did not run", async (live) => {
      await page.locator("button:has-text('Generate code')").last().click();
      const cell = page.locator(".jp-NotebookPanel .jp-CodeCell", { hasText: "dag.search" }).first();
      await cell.waitFor({ state: "visible", timeout: 60_000 });
      scenario.facts.code = await cell.locator(".cm-content").innerText();
      await cell.locator(".cm-content").click();
      await page.keyboard.press("Shift+Enter");
      for (;;) {
        live();
        if (/\[\d+\]/.test(await cell.locator(".jp-InputPrompt").innerText())) break;
        await sleep(500);
      }
      scenario.facts.output = (await cell.locator(".jp-OutputArea-output").allInnerTexts()).join("\n");
      await cell.scrollIntoViewIfNeeded();
      await scenario.screenshot(page, "eodag-code-run");
    });

    return await scenario.finish(null);
  } catch (err) {
    return await scenario.finish(err, [page]);
  }
}

process.exit(await main());
