// IDE scenario: /lab -> "VS Code" tile -> code-server's workbench -> the explorer shows the user's home (the folder
// name and a file the test put there), and the URL names that folder.
//
// node ide.mjs --url URL --token TOKEN --out DIR --home /home/jovyan --marker FILE_NAME
// Writes DIR/ide-result.json (and prints it as the last line); exit 0 when every step passed.
import { StepError, Scenario, openLab, openTile, parseArgs } from "./lib.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const home = args.home || "/home/jovyan";
  const folderName = home.split("/").filter(Boolean).pop();
  const scenario = new Scenario("ide", args);
  let lab;
  let ide;
  try {
    await scenario.launch();
    lab = await openLab(scenario);
    ide = await openTile(scenario, lab, "VS Code", 120);

    await scenario.step("VS Code workbench loads", 180, "the VS Code workbench did not appear", async (live) => {
      for (;;) {
        live();
        if (await ide.locator(".monaco-workbench").count()) break;
        const text = (await ide.locator("body").innerText({ timeout: 5_000 }).catch(() => "")) || "";
        if (/500|502|503|Internal Server Error|could not start|failed to/i.test(text.slice(0, 400))) {
          throw new StepError(`/vscode/ shows an error instead of the workbench: ${text.slice(0, 400)}`);
        }
        await sleep(1000);
      }
      await ide.locator(".monaco-workbench .part.sidebar, .monaco-workbench .part.editor").first()
        .waitFor({ state: "visible", timeout: 120_000 });
    });

    await scenario.step("the workbench opened the user's home", 120, "the explorer never showed the home folder", async (live) => {
      const url = new URL(ide.url());
      scenario.facts.url = `${url.pathname}${url.search}`;
      const folder = url.searchParams.get("folder");
      if (folder !== home) {
        throw new StepError(`the workbench URL opens folder ${JSON.stringify(folder)}, not ${home}`);
      }
      // Open the explorer if it is not showing, then wait for the marker file the test put in HOME.
      const explorer = ide.locator(".explorer-folders-view");
      if (!(await explorer.count())) {
        await ide.keyboard.press("Control+Shift+E");
      }
      const row = ide.locator(`.explorer-folders-view .monaco-list-row[aria-label*="${args.marker}"]`);
      const deadline = Date.now() + 100_000;
      while (!(await row.count())) {
        live();
        if (Date.now() > deadline) {
          const rows = await ide.locator(".explorer-folders-view .monaco-list-row").allInnerTexts().catch(() => []);
          throw new StepError(`the explorer does not list ${args.marker} from ${home}; it lists ${JSON.stringify(rows)}`);
        }
        await sleep(1000);
      }
      const header = await ide.locator(".explorer-viewlet .pane-header, .sidebar .pane-header").allInnerTexts();
      scenario.facts.explorerHeaders = header.map((h) => h.trim());
      scenario.facts.title = await ide.title();
      if (!scenario.facts.explorerHeaders.some((h) => h.toUpperCase().includes(folderName.toUpperCase())) &&
          !scenario.facts.title.includes(folderName)) {
        throw new StepError(
          `neither the explorer (${JSON.stringify(scenario.facts.explorerHeaders)}) nor the title ` +
            `(${JSON.stringify(scenario.facts.title)}) names the folder ${folderName}`,
        );
      }
    });
    // Settle a moment so the screenshot shows the workbench, not a half-drawn frame.
    await sleep(2000);
    await scenario.screenshot(ide, "ide");
    return await scenario.finish(null);
  } catch (err) {
    return await scenario.finish(err, [ide, lab]);
  }
}

// Exit explicitly: the result file is written; nothing left behind (a page, a poll) may keep the process alive.
process.exit(await main());
