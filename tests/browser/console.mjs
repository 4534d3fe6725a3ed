// Drives the web console in headless Chromium, as the people who use it
// would: a bureau, a hospital and an enterprise sign in, see their own data,
// file an issue with evidence, watch its SLA countdown run out, and export
// lists to .xlsx. Run by tests/tests/browser.rs, which starts the platform
// and answers this script's requests on stdin:
//   stdout "CLOCK <seconds>"  → the platform's clock is advanced, then "ok" on stdin
//   stdout "FILE <what> <path>" → a downloaded file for the Rust side to check
// Environment: VBP_CONSOLE_URL, VBP_CONSOLE_TOKENS (JSON name → token),
// VBP_CONSOLE_ARTIFACTS (screenshots and downloads), VBP_CHROMIUM and
// VBP_BROWSER_NODE_PATH (the node_modules holding playwright-core).

import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

// playwright-core is installed outside the source tree (deploy/local/lib.sh,
// ensure_browser), where ES module resolution does not look.
const modules = process.env.VBP_BROWSER_NODE_PATH || process.env.NODE_PATH;
const { chromium } = createRequire(join(modules || process.cwd(), "noop.js"))("playwright-core");

const base = process.env.VBP_CONSOLE_URL;
const tokens = JSON.parse(process.env.VBP_CONSOLE_TOKENS || "{}");
const artifacts = process.env.VBP_CONSOLE_ARTIFACTS;
const executablePath = process.env.VBP_CHROMIUM;
if (!base || !artifacts || !executablePath) throw new Error("VBP_CONSOLE_URL, VBP_CONSOLE_ARTIFACTS and VBP_CHROMIUM are required");
mkdirSync(artifacts, { recursive: true });

const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
async function ask(command) {
  process.stdout.write(`${command}\n`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "ok") throw new Error(`${command}: the test answered ${done ? "nothing" : value}`);
}

function check(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
  console.error(`  ok: ${what}`);
}

const problems = [];
/** The page in use, photographed when a scenario fails. */
let current = null;
const TIMEOUT = 20_000;

async function newPage(browser, name) {
  const context = await browser.newContext({ acceptDownloads: true, locale: "zh-CN", timezoneId: "Asia/Shanghai", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  current = page;
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => problems.push(`${name}: page error ${e.message}`));
  page.on("console", (m) => {
    // A refused request is logged by Chromium itself; the console handles it.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`${name}: console error ${m.text()}`);
  });
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

async function pasteToken(page, who) {
  await page.getByLabel("访问令牌").fill(tokens[who]);
  await page.getByRole("button", { name: "登录", exact: true }).click();
  await page.locator("h1[data-view]").waitFor();
}

async function pickOrg(page, name) {
  const option = page.locator('select[name="org"] option', { hasText: name }).first();
  await option.waitFor({ state: "attached" });
  await page.locator('select[name="org"]').selectOption(await option.getAttribute("value"));
}

/** Opens a view from the menu and waits until it shows its data. */
async function open(page, link, view) {
  await page.getByRole("link", { name: link }).click();
  await page.locator(`h1[data-view="${view}"]`).waitFor();
  await waitLoaded(page);
}

async function waitLoaded(page) {
  await page.locator(".view:not([aria-busy])").waitFor();
  const error = page.locator(".view .error");
  if (await error.count()) throw new Error(`the view shows an error: ${await error.innerText()}`);
}

async function saveDownload(page, click, what) {
  const [download] = await Promise.all([page.waitForEvent("download"), click()]);
  const path = join(artifacts, `${what}-${download.suggestedFilename()}`);
  await download.saveAs(path);
  check(download.suggestedFilename().endsWith(".xlsx"), `${what} downloads an .xlsx (${download.suggestedFilename()})`);
  process.stdout.write(`FILE ${what} ${path}\n`);
  return path;
}

async function tableText(page, id) {
  return page.locator(`[data-table="${id}"] tbody`).innerText();
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  // --- the sign-in page, keyboard and language -------------------------------------------
  {
    const { context, page } = await newPage(browser, "signin");
    await page.goto(base);
    check((await page.getAttribute("html", "lang")) === "zh-CN", "the page is declared Chinese");
    await page.getByRole("heading", { name: "登录" }).waitFor();
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.id === "skip"), "the first Tab reaches the skip link");
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.id === "lang"), "the next Tab reaches the language switch");
    await page.getByRole("button", { name: "English" }).click();
    check((await page.getAttribute("html", "lang")) === "en", "the English switch declares the page English");
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("Access token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.locator("#status.error").waitFor();
    check((await page.innerText("#status")).startsWith("Sign-in failed"), "a bad token is refused with a message");
    await shot(page, "01-sign-in-en");
    await page.getByRole("button", { name: "中文" }).click();
    check((await page.getAttribute("html", "lang")) === "zh-CN", "switching back declares the page Chinese");
    await context.close();
  }

  // --- a bureau: region dashboard, issue ledger, prepayment, reconciliation, exports ---------
  {
    // Two months into the period (test clock), so time progress is ahead of
    // what some hospitals bought.
    await ask("CLOCK 5184000");
    const { context, page } = await newPage(browser, "bureau");
    await page.goto(base);
    await pasteToken(page, "bureau-fuxin");
    await waitLoaded(page);
    check((await page.innerText("#who")).includes("阜新市医疗保障局"), "the bureau sees its own name");
    const bars = page.locator('svg[data-chart="progress"] g[data-group]');
    check((await bars.count()) > 0, "the dashboard charts progress per product group");
    check((await page.locator('svg[data-chart="progress"] .chart-time').count()) === 1, "the chart marks the time progress");
    check((await page.locator('svg[data-chart="progress"] g[data-lagging="true"]').count()) > 0, "a product group behind time progress is marked");
    const lagging = await tableText(page, "lagging");
    check(lagging.includes("彰武县人民医院") || lagging.includes("阜新市中心医院"), "Fuxin's hospitals behind schedule are listed");
    check(!lagging.includes("中国医科大学附属第一医院"), "no Shenyang hospital among Fuxin's lagging hospitals");
    await shot(page, "02-bureau-dashboard");
    await saveDownload(page, () => page.locator('[data-table="lagging"] button[data-export="server"]').click(), "bureau-progress");

    await open(page, "问题台账", "issues");
    const issues = await tableText(page, "issues");
    check(issues.includes("阜新市中心医院"), "the bureau's ledger lists its hospitals' issues");
    check(!issues.includes("中国医科大学附属第一医院"), "the bureau's ledger shows no issue of another region");
    check((await page.locator('[data-table="issues"] .countdown').count()) > 0, "each open issue shows its SLA countdown");
    await shot(page, "03-bureau-issues");

    await open(page, "预付金台账", "prepayment");
    await page.locator('[data-table="prepayment"]').waitFor();
    await shot(page, "04-bureau-prepayment");

    await open(page, "对账", "reconciliation");
    await page.locator("[data-clean]").waitFor();
    await shot(page, "05-bureau-reconciliation");

    await open(page, "监管与信用", "supervision");
    await page.locator('[data-table="credit-records"]').waitFor();
    await page.locator('[data-table="findings"]').waitFor();
    check((await tableText(page, "credit-records")).includes("阜新示例医药有限公司"), "the bureau sees the credit record it filed");
    await shot(page, "05b-bureau-supervision");

    // English tables: every string exists in English too.
    await page.getByRole("button", { name: "English" }).click();
    await waitLoaded(page);
    await page.getByRole("heading", { name: "Supervision and credit" }).waitFor();
    await open(page, "Region dashboard", "dashboard");
    await page.getByRole("heading", { name: "Hospitals behind schedule" }).waitFor();
    await shot(page, "06-bureau-dashboard-en");
    await page.getByRole("button", { name: "中文" }).click();
    await page.getByRole("button", { name: "退出登录" }).click();
    await page.getByRole("heading", { name: "登录" }).waitFor();
    check((await page.evaluate(() => sessionStorage.length)) === 0, "signing out leaves no token behind");
    await context.close();
  }

  // --- a hospital: dev sign-in, file an issue with evidence, countdown, export ---------------
  const scope = `浏览器测试-${Date.now()}`;
  {
    const { context, page } = await newPage(browser, "hospital");
    await page.goto(base);
    await pickOrg(page, "阜新市中心医院");
    await page.getByRole("button", { name: "以该机构登录" }).click();
    await page.locator("h1[data-view]").waitFor();
    await waitLoaded(page);
    check((await page.innerText("#who")).includes("阜新市中心医院"), "the dev sign-in signs in as the chosen hospital");

    const form = page.locator("form", { has: page.getByRole("heading", { name: "直报问题" }) });
    await form.getByLabel("中选产品").selectOption("C02010205103001108810000032");
    await form.getByLabel("涉及数量").fill("3");
    await form.getByLabel("问题类型").selectOption("late_delivery");
    await form.getByLabel("影响范围").fill(scope);
    await form.getByLabel("情况说明", { exact: true }).fill("配送企业连续两次未按约定时间送达。");
    await form.getByLabel("情况说明已加盖公章").check();
    const png = Buffer.from(
      "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082",
      "hex",
    );
    await form.getByLabel("证明材料", { exact: true }).setInputFiles({ name: "送货单.png", mimeType: "image/png", buffer: png });
    await form.getByRole("button", { name: "提交问题" }).click();
    await page.locator("#status.ok").waitFor();
    check((await page.innerText("#status")).includes("企业响应时限"), "filing confirms the enterprise's deadline");
    const row = page.locator('[data-table="my-issues"] tbody tr', { hasText: "送货单.png" });
    await row.waitFor();
    const countdown = row.locator(".countdown");
    check((await countdown.getAttribute("data-over")) === "false", "the new issue's countdown runs");
    const first = await countdown.innerText();
    check(first.startsWith("剩余"), `the countdown shows the time left (${first})`);
    await shot(page, "07-hospital-issue-filed");
    await page.locator('[data-table="my-issues"] input[type="search"]').fill("送货单.png");
    check((await page.locator('[data-table="my-issues"] tbody tr').count()) === 1, "the text filter narrows the list to the filed issue");
    await saveDownload(page, () => page.locator('[data-table="my-issues"] button[data-export="table"]').click(), "hospital-issues");

    await open(page, "订单", "orders");
    await saveDownload(page, () => page.locator('[data-table="orders"] button[data-export="table"]').click(), "hospital-orders");
    await open(page, "三方协议", "agreements");
    await shot(page, "08-hospital-agreements");

    // Two weeks on (test clock; the National Day holiday lies between): the
    // enterprise's three working days are over, and the 12-hour dev token is too.
    await ask("CLOCK 1209600");
    await page.reload();
    await page.getByRole("heading", { name: "登录" }).waitFor();
    check((await page.innerText("#status")).includes("登录"), "an expired sign-in returns to the sign-in page with a message");
    await pickOrg(page, "阜新市中心医院");
    await page.getByRole("button", { name: "以该机构登录" }).click();
    await waitLoaded(page);
    const late = page.locator('[data-table="my-issues"] tbody tr', { hasText: "送货单.png" }).locator(".countdown");
    await late.waitFor();
    check((await late.getAttribute("data-over")) === "true", "the countdown turns overdue once the deadline passed");
    check((await late.innerText()).startsWith("已逾期"), `the countdown says overdue (${await late.innerText()})`);
    await shot(page, "09-hospital-issue-overdue");
    await context.close();
  }

  // --- another hospital does not see it ------------------------------------------------------
  {
    const { context, page } = await newPage(browser, "hospital-other");
    await page.goto(base);
    await pasteToken(page, "hospital-shenyang");
    await waitLoaded(page);
    const text = await tableText(page, "my-issues");
    check(!text.includes("送货单.png") && !text.includes("阜新"), "another hospital sees none of the first one's issues");
    await context.close();
  }

  // --- an enterprise: issues due, relations, confirmations --------------------------------
  {
    const { context, page } = await newPage(browser, "distributor");
    await page.goto(base);
    await pasteToken(page, "distributor-fuxin");
    await waitLoaded(page);
    const due = await tableText(page, "due");
    check(due.includes("阜新市中心医院"), "the distributor's work list has the issue dispatched to it");
    check((await page.locator('[data-table="due"] .countdown.over').count()) > 0, "its overdue response is marked");
    await shot(page, "10-distributor-due");
    await open(page, "配送关系", "relations");
    const rows = page.locator('[data-table="relations"] tbody tr');
    const n = await rows.count();
    check(n > 0, "the distributor sees its relations");
    const text = await tableText(page, "relations");
    check(!text.includes("辽宁示例医药物流有限公司"), "no relation of the other distributor");
    await saveDownload(page, () => page.locator('[data-table="relations"] button[data-export="table"]').click(), "distributor-relations");
    await open(page, "待确认事项", "pending");
    await page.locator('[data-table="pending-relations"]').waitFor();
    await shot(page, "11-distributor-pending");
    await context.close();
  }
} catch (e) {
  input.close();
  process.stdin.destroy();
  if (current) await current.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}

if (problems.length) {
  for (const p of problems) console.error(p);
  throw new Error(`${problems.length} page errors`);
}
console.error("browser scenarios passed");
// The test keeps stdin open for clock requests; let go of it to exit.
input.close();
process.stdin.destroy();
