// The console's shell: sign-in, the menu of the caller's views, language.
// The token lives in this tab's sessionStorage only; signing out (or a
// refused token) drops it together with every row held in memory.

import { claims, consoleCall, get, hasToken, onSignInLost, setToken } from "./api.js?v=__V__";
import { LANGS, label, lang, setLang, t } from "./i18n.js?v=__V__";
import { announce, errorBox, h, nextId, syncClock } from "./ui.js?v=__V__";
import { loadPeriods, viewsFor } from "./views.js?v=__V__";

const TOKEN_KEY = "vbp.console.token";
const LANG_KEY = "vbp.console.lang";

let config = { dev: false, issuer: null };
/** Everything known about the signed-in caller; replaced whole at each sign-in. */
let ctx = null;

const main = () => document.getElementById("main");

function chrome() {
  document.title = t("app.title");
  document.getElementById("skip").textContent = t("app.skip");
  document.getElementById("app-title").textContent = t("app.title");
  document.getElementById("app-subtitle").textContent = t("app.subtitle");
  const langButton = document.getElementById("lang");
  langButton.textContent = t("lang.switch");
  // The visible name stays the accessible name (WCAG 2.5.3); the title says what it does.
  langButton.setAttribute("title", t("lang.switch.label"));
  langButton.setAttribute("lang", lang() === "en" ? "zh-CN" : "en");
  document.getElementById("nav").setAttribute("aria-label", t("nav.label"));
  const who = document.getElementById("who");
  const out = document.getElementById("signout");
  out.textContent = t("signout");
  if (ctx) {
    who.textContent = t("who", { name: ctx.me.name, kind: label("kind", ctx.me.kind), region: ctx.me.region });
    out.hidden = false;
  } else {
    who.textContent = "";
    out.hidden = true;
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  setToken(null);
  ctx = null;
  location.hash = "";
  document.getElementById("nav").replaceChildren();
  renderSignIn(message, true);
}

async function signIn(token) {
  let c;
  try {
    c = claims(token);
  } catch {
    throw new Error(t("signin.failed", { detail: "JWT" }));
  }
  setToken(token);
  // A fresh context: nothing of an earlier caller survives into this one.
  const fresh = { me: { org: c.org, kind: c.org_kind, region: c.region, name: c.org }, names: new Map(), periods: [], period: null, supervision: false };
  const orgs = await get("/orgs", { page_size: 500 });
  for (const o of orgs.items) fresh.names.set(o.org, o.name);
  fresh.me.name = fresh.names.get(c.org) || c.sub;
  await loadPeriods(fresh);
  if (c.org_kind === "bureau") fresh.supervision = await supervisionServed();
  sessionStorage.setItem(TOKEN_KEY, token);
  ctx = fresh;
  chrome();
  const views = viewsFor(ctx.me.kind, ctx.supervision);
  const wanted = location.hash.replace(/^#\/?/, "");
  if (!views.some(([name]) => name === wanted)) location.hash = views.length ? `#/${views[0][0]}` : "";
  await route();
}

/** The supervision service's routes are offered once a release carries them. */
async function supervisionServed() {
  try {
    const doc = await fetch("/api/openapi.json", { cache: "no-store" }).then((r) => r.json());
    return Object.keys(doc.paths || {}).some((p) => p.startsWith("/api/v1/supervision/credit-records"));
  } catch {
    return false;
  }
}

/** The sign-in page; `focus` moves the keyboard to it (after a sign-out, not on first load). */
function renderSignIn(message, focus = false) {
  chrome();
  const m = main();
  const tokenId = nextId("token");
  const tokenInput = h("textarea", { id: tokenId, name: "token", rows: "4", spellcheck: "false", autocomplete: "off", "aria-describedby": `${tokenId}-help` });
  const form = h(
    "form",
    { class: "card form", "aria-labelledby": "signin-heading" },
    h("h1", { id: "signin-heading", tabindex: "-1" }, t("signin.title")),
    h("p", {}, t("signin.intro")),
    config.issuer ? h("p", {}, t("signin.issuer", { issuer: config.issuer })) : null,
    h("div", { class: "field" }, h("label", { for: tokenId }, t("signin.token")), tokenInput, h("span", { id: `${tokenId}-help`, class: "help" }, t("signin.token.help"))),
    h("button", { type: "submit" }, t("signin.submit")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = tokenInput.value.trim().replace(/^bearer\s+/i, "");
    if (!token) {
      announce(t("signin.empty"), "error");
      tokenInput.focus();
      return;
    }
    await attempt(token);
  });
  m.replaceChildren(form);
  if (config.dev) m.append(devSignIn());
  if (message) announce(message, "error");
  else announce("");
  if (focus) document.getElementById("signin-heading").focus();
}

/** Signs in with `token`; on failure the sign-in page says why. */
async function attempt(token, restoring = false) {
  try {
    await signIn(token);
    return true;
  } catch (e) {
    setToken(null);
    ctx = null;
    sessionStorage.removeItem(TOKEN_KEY);
    const message = restoring && e.status === 401 ? t("signin.expired") : t("signin.failed", { detail: e.detail || e.message });
    if (document.getElementById("signin-heading")) announce(message, "error");
    else renderSignIn(message);
    return false;
  }
}

function devSignIn() {
  const id = nextId("org");
  const select = h("select", { id, name: "org" }, h("option", { value: "" }, t("loading")));
  const box = h(
    "form",
    { class: "card form dev", "aria-labelledby": "dev-heading" },
    h("h2", { id: "dev-heading" }, t("signin.dev")),
    h("p", { class: "help" }, t("signin.dev.help")),
    h("div", { class: "field" }, h("label", { for: id }, t("signin.dev.org")), select),
    h("button", { type: "submit" }, t("signin.dev.submit")),
  );
  consoleCall("GET", "/console/dev/orgs")
    .then((r) => {
      select.replaceChildren(...r.items.map((o) => h("option", { value: o.org }, `${o.name}（${label("kind", o.kind)}，${o.region}）`)));
    })
    .catch((e) => announce(t("error", { detail: e.detail || e.message }), "error"));
  box.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!select.value) return;
    try {
      const minted = await consoleCall("POST", "/console/dev/token", { org: select.value });
      await attempt(minted.token);
    } catch (e) {
      announce(t("signin.failed", { detail: e.detail || e.message }), "error");
    }
  });
  return box;
}

function renderNav(views, active) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h(
      "ul",
      {},
      views.map(([name]) =>
        h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === active ? "page" : null, "data-view-link": name }, t(`view.${name}`))),
      ),
    ),
  );
}

let routing = 0;

async function route() {
  if (!ctx) return;
  const mine = ++routing;
  const views = viewsFor(ctx.me.kind, ctx.supervision);
  const m = main();
  if (views.length === 0) {
    renderNav([], null);
    m.replaceChildren(h("p", { class: "note" }, t("view.unsupported", { kind: label("kind", ctx.me.kind) })));
    return;
  }
  const name = location.hash.replace(/^#\/?/, "");
  const found = views.find(([n]) => n === name) || views[0];
  renderNav(views, found[0]);
  const heading = h("h1", { tabindex: "-1", "data-view": found[0] }, t(`view.${found[0]}`));
  const body = h("div", { class: "view", "aria-busy": "true" }, h("p", {}, t("loading")));
  m.replaceChildren(heading, body);
  heading.focus();
  const owner = ctx;
  const rerender = () => route();
  const content = h("div", {});
  try {
    await found[1](owner, content, rerender);
    if (mine !== routing || owner !== ctx) return;
    body.replaceChildren(content);
  } catch (e) {
    if (mine !== routing || owner !== ctx) return;
    body.replaceChildren(errorBox(e, rerender));
  } finally {
    body.removeAttribute("aria-busy");
  }
}

async function start() {
  setLang(localStorage.getItem(LANG_KEY) || "zh-CN");
  document.getElementById("lang").addEventListener("click", () => {
    const next = LANGS.find((l) => l !== lang());
    localStorage.setItem(LANG_KEY, next);
    setLang(next);
    // A message in the previous language would now be unreadable to some.
    announce("");
    chrome();
    if (ctx) route();
    else renderSignIn();
  });
  document.getElementById("signout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => route());
  onSignInLost(() => signOut(t("signin.expired")));
  try {
    config = await consoleCall("GET", "/console/config");
    syncClock(config.now);
  } catch (e) {
    main().replaceChildren(errorBox(e, () => location.reload()));
    return;
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved && !hasToken()) await attempt(saved, true);
  else renderSignIn();
}

start();
