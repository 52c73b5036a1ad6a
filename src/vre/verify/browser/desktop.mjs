// Desktop scenario: /lab -> "Desktop" tile -> noVNC connected -> XFCE drawn -> QGIS started from its desktop icon
// -> the QGIS window is on screen, proven by comparing the screen before and after where X says QGIS's window is.
//
// node desktop.mjs --url URL --token TOKEN --out DIR --probe '["docker","exec",...,"python","-m","...xsession"]'
// Writes DIR/desktop-result.json (and prints it as the last line); exit 0 when every step passed.
import { StepError, Scenario, openLab, openTile, parseArgs } from "./lib.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- pixel analysis, run inside the noVNC page on its canvas (the remote screen, 1:1 since resizeSession is on) ---

function canvasStats() {
  const canvas = document.querySelector("#screen canvas");
  if (!canvas || !canvas.width || !canvas.height) return null;
  const { width, height } = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const colors = new Map();
  let hash = 0;
  for (let i = 0; i < data.length; i += 4 * 97) {
    const key = (data[i] >> 3) * 1024 + (data[i + 1] >> 3) * 32 + (data[i + 2] >> 3);
    colors.set(key, (colors.get(key) || 0) + 1);
    hash = (hash * 31 + data[i] + data[i + 1] * 7 + data[i + 2] * 13) >>> 0;
  }
  const dominant = [...colors.entries()].sort((a, b) => b[1] - a[1])[0];
  return { width, height, colors: colors.size, dominantShare: dominant[1] / (data.length / (4 * 97)), hash };
}

function keepScreen(name) {
  const canvas = document.querySelector("#screen canvas");
  const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  window.__vreScreens = window.__vreScreens || {};
  window.__vreScreens[name] = image;
  return { width: image.width, height: image.height };
}

// Icons on the desktop: blobs of non-background pixels in the left columns, top to bottom, with how green they are
// (QGIS's icon is green; the terminal icons are grey).
function desktopIcons() {
  const canvas = document.querySelector("#screen canvas");
  const { width, height } = canvas;
  const area = Math.min(width, 260);
  const data = canvas.getContext("2d").getImageData(0, 0, area, height).data;
  const px = (x, y) => (y * area + x) * 4;
  // background: the most common colour of the strip
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4 * 13) {
    const key = `${data[i] >> 2},${data[i + 1] >> 2},${data[i + 2] >> 2}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const [bg, bgG, bgB] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0].split(",").map((v) => Number(v) * 4);
  const isBg = (i) =>
    Math.abs(data[i] - bg) < 24 && Math.abs(data[i + 1] - bgG) < 24 && Math.abs(data[i + 2] - bgB) < 24;
  // rows with icon pixels, ignoring a top panel (rows that are non-background across most of the strip)
  const rows = [];
  for (let y = 0; y < height; y++) {
    let n = 0;
    for (let x = 0; x < area; x++) if (!isBg(px(x, y))) n++;
    rows.push(n > 0 && n < area * 0.9 ? n : 0);
  }
  const blobs = [];
  let start = -1;
  let gap = 0;
  for (let y = 0; y <= height; y++) {
    const on = y < height && rows[y] > 0;
    if (on) {
      if (start < 0) start = y;
      gap = 0;
    } else if (start >= 0 && ++gap > 12) {
      blobs.push([start, y - gap]);
      start = -1;
      gap = 0;
    }
  }
  return blobs
    .filter(([y0, y1]) => y1 - y0 >= 24)
    .map(([y0, y1]) => {
      let x0 = area;
      let x1 = 0;
      let green = 0;
      let total = 0;
      for (let y = y0; y <= y1; y++) {
        for (let x = 0; x < area; x++) {
          const i = px(x, y);
          if (isBg(i)) continue;
          total++;
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          if (data[i + 1] > data[i] + 30 && data[i + 1] > data[i + 2] + 30) green++;
        }
      }
      return { x0, x1, y0, y1, green, total, background: [bg, bgG, bgB] };
    });
}

// Share of pixels that changed between two kept screens, inside a rectangle and outside it.
function changedShares([before, after, rect]) {
  const a = window.__vreScreens[before];
  const b = window.__vreScreens[after];
  const width = Math.min(a.width, b.width);
  const height = Math.min(a.height, b.height);
  const r = {
    x0: Math.max(0, rect.x),
    y0: Math.max(0, rect.y),
    x1: Math.min(width, rect.x + rect.width),
    y1: Math.min(height, rect.y + rect.height),
  };
  let inside = 0;
  let insideChanged = 0;
  let outside = 0;
  let outsideChanged = 0;
  for (let y = 0; y < height; y += 2) {
    for (let x = 0; x < width; x += 2) {
      const i = (y * a.width + x) * 4;
      const j = (y * b.width + x) * 4;
      const changed =
        Math.abs(a.data[i] - b.data[j]) + Math.abs(a.data[i + 1] - b.data[j + 1]) + Math.abs(a.data[i + 2] - b.data[j + 2]) > 48;
      if (x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1) {
        inside++;
        if (changed) insideChanged++;
      } else {
        outside++;
        if (changed) outsideChanged++;
      }
    }
  }
  return {
    rect: r,
    insideShare: inside ? insideChanged / inside : 0,
    outsideShare: outside ? outsideChanged / outside : 0,
    rectShareOfScreen: inside / (inside + outside),
  };
}

// --- the scenario ---

// The websocket endpoint asked directly over HTTP: its answer says why the VNC server is unreachable (e.g. a 500
// "could not start desktop-websockify in time"); jupyter-server-proxy waits up to 30 s for the server to start.
function probeWebsockify(desktop) {
  return desktop
    .evaluate(async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 45_000);
      try {
        const r = await fetch(new URL("../desktop-websockify/", window.location), {
          credentials: "same-origin",
          signal: controller.signal,
        });
        const text = (await r.text()).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
        // Jupyter's error page: keep its message, not the page around it
        const message = text.match(/The error was: (.*?)(?: function |$)/);
        return { status: r.status, text: (message ? message[1] : text).slice(0, 300) };
      } catch (err) {
        return { status: 0, text: String(err) };
      }
    })
    .catch((err) => ({ status: 0, text: String(err) }));
}

async function waitConnected(scenario, desktop) {
  return scenario.step("noVNC connects", 120, "noVNC never reported Connected", async (live) => {
    const seen = [];
    const started = Date.now();
    let probe = null;
    const fail = (status, answer) => {
      throw new StepError(
        `noVNC could not connect to the VNC server: status "${status}" (statuses seen: ${JSON.stringify(seen)}); ` +
          `GET ../desktop-websockify/ answered ${answer.status}: ${answer.text}. The desktop's VNC server did not ` +
          "start: see the container log (vncserver / Xtigervnc / xstartup lines)",
      );
    };
    for (;;) {
      live();
      const status = ((await desktop.locator("#status").textContent({ timeout: 10_000 }).catch(() => "")) || "").trim();
      if (!seen.includes(status)) seen.push(status);
      if (status === "Connected") return status;
      if (/went wrong|Failed|Disconnected/i.test(status)) fail(status, await probeWebsockify(desktop));
      // Still "Connecting..." after 20 s: ask the endpoint in the background; an error answer ends the wait.
      if (!probe && Date.now() - started > 20_000) {
        probe = probeWebsockify(desktop).then((answer) => (scenario.facts.websockifyProbe = answer));
      }
      if (scenario.facts.websockifyProbe && scenario.facts.websockifyProbe.status >= 400) {
        fail(status, scenario.facts.websockifyProbe);
      }
      await sleep(500);
    }
  });
}

async function waitStable(desktop, minColors, seconds, live) {
  const deadline = Date.now() + seconds * 1000;
  let last = null;
  let stableSince = 0;
  let stats = null;
  while (Date.now() < deadline) {
    live();
    stats = await desktop.evaluate(canvasStats);
    if (stats && stats.colors >= minColors && last && stats.hash === last.hash) {
      if (Date.now() - stableSince > 2500) return stats;
    } else {
      stableSince = Date.now();
    }
    last = stats;
    await sleep(700);
  }
  return { ...stats, unstable: true };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const scenario = new Scenario("desktop", args);
  let lab;
  let desktop;
  try {
    await scenario.launch();
    lab = await openLab(scenario);
    desktop = await openTile(scenario, lab, "Desktop");
    scenario.facts.desktopUrl = desktop.url().replace(/token=[^&]+/, "token=…");
    await waitConnected(scenario, desktop);

    await scenario.step("XFCE desktop drawn", 120, "the remote screen stayed blank or never settled", async (live) => {
      for (;;) {
        live();
        const state = scenario.probe();
        if (state && !state.error && state.session && Object.values(state.session).every(Boolean)) {
          const names = new Set(state.windows.filter((w) => w.viewable).map((w) => w.name));
          if (names.has("xfce4-panel") && names.has("Desktop")) {
            scenario.facts.display = state.display;
            break;
          }
        }
        if (state && state.error) scenario.facts.probeError = state.error;
        await sleep(1000);
      }
      const stats = await waitStable(desktop, 12, 60, live);
      scenario.facts.desktopCanvas = stats;
      if (stats.unstable) throw new StepError(`the desktop did not settle: ${JSON.stringify(stats)}`);
    });
    await desktop.evaluate(keepScreen, "before");
    await scenario.screenshot(desktop, "desktop");

    const icon = await scenario.step("find the QGIS icon on the desktop", 30, "no icons found", async () => {
      const icons = await desktop.evaluate(desktopIcons);
      scenario.facts.icons = icons;
      // QGIS's icon is mostly green (about 2/3 of its pixels); the others have little or no green
      const qgis = icons.filter((i) => i.green / i.total > 0.3).sort((a, b) => b.green / b.total - a.green / a.total)[0];
      if (!qgis) {
        throw new StepError(
          `no QGIS icon (a green icon) on the desktop: icons found ${JSON.stringify(icons)}; ` +
            "were the launchers copied to ~/Desktop at start?",
        );
      }
      return qgis;
    });

    const canvasBox = await desktop.locator("#screen canvas").boundingBox();
    const qgisWindow = await scenario.step("QGIS starts from its desktop icon", 240, "no QGIS window appeared", async (live) => {
      // the icon's image is the upper part of the blob, the label below it
      const x = canvasBox.x + (icon.x0 + icon.x1) / 2;
      const y = canvasBox.y + icon.y0 + Math.min(24, (icon.y1 - icon.y0) / 3);
      scenario.facts.clickAt = { x: Math.round(x - canvasBox.x), y: Math.round(y - canvasBox.y) };
      // Select the icon, then activate it with Return: a double-click's two clicks can reach xfdesktop further apart
      // than its double-click time when noVNC's events queue up on a loaded machine (seen once in CI: nothing launched).
      await desktop.mouse.click(x, y);
      await sleep(500);
      await desktop.keyboard.press("Enter");
      let state = null;
      for (let tick = 0; ; tick++) {
        live();
        state = scenario.probe();
        if (state && state.qgis_windows && state.qgis_windows.length) break;
        if (tick === 30 && !(state && state.qgis_running)) {
          // 30 s and no qgis process: activating the icon launched nothing
          await scenario.screenshot(desktop, "desktop-after-doubleclick");
          throw new StepError(
            `no qgis process 30 s after selecting the QGIS icon at ${JSON.stringify(scenario.facts.clickAt)} and pressing Return; ` +
              `windows: ${JSON.stringify((state?.windows || []).filter((w) => w.viewable).map((w) => w.name))}`,
          );
        }
        await sleep(1000);
      }
      return state.qgis_windows[0];
    });
    scenario.facts.qgisWindow = qgisWindow;

    await scenario.step("QGIS window drawn", 120, "the screen did not settle after QGIS started", async (live) => {
      await sleep(3000);
      const stats = await waitStable(desktop, 12, 110, live);
      scenario.facts.qgisCanvas = stats;
    });
    await desktop.evaluate(keepScreen, "after");
    await scenario.screenshot(desktop, "desktop-qgis");

    await scenario.step("the screenshots show the QGIS window", 60, "the comparison did not finish", async () => {
      const shares = await desktop.evaluate(changedShares, ["before", "after", qgisWindow]);
      scenario.facts.comparison = shares;
      if (shares.rectShareOfScreen < 0.1) {
        throw new StepError(`the QGIS window covers only ${(shares.rectShareOfScreen * 100).toFixed(1)}% of the screen`);
      }
      if (shares.insideShare < 0.5) {
        throw new StepError(
          `where X has the QGIS window ${JSON.stringify(shares.rect)}, only ${(shares.insideShare * 100).toFixed(1)}% ` +
            "of the pixels changed between desktop.png and desktop-qgis.png: the window is not on screen",
        );
      }
    });
    return await scenario.finish(null);
  } catch (err) {
    return await scenario.finish(err, [desktop, lab]);
  }
}

// Exit explicitly: the result file is written; nothing left behind (a page, a poll) may keep the process alive.
process.exit(await main());
