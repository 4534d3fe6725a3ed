// Building blocks: elements, formats (fen, basis points, Beijing time),
// filterable and exportable tables, and SLA countdowns.

import { api, download } from "./api.js?v=__V__";
import { lang, t } from "./i18n.js?v=__V__";

/** An element: `h("p", {class: "x"}, "text", child)`. Text is never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

/** Fen as yuan text with two decimals, by integer arithmetic. */
export function yuan(fen) {
  if (fen === undefined || fen === null) return "";
  const n = BigInt(fen);
  const neg = n < 0n;
  const a = neg ? -n : n;
  const whole = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (a % 100n).toString().padStart(2, "0");
  return `${neg ? "-" : ""}${whole}.${cents}`;
}

/** Basis points as a percentage with two decimals. */
export function percent(bp) {
  if (bp === undefined || bp === null) return "—";
  return `${Math.floor(bp / 100)}.${String(bp % 100).padStart(2, "0")}%`;
}

const TZ = "Asia/Shanghai";

/** An instant in Beijing time. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Intl.DateTimeFormat(lang(), {
    timeZone: TZ,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  }).format(d);
}

export function day(isoDate) {
  return isoDate || "";
}

export const yesNo = (b) => t(b ? "yes" : "no");

/** The platform's clock, as told by the gateway, kept running by the browser's. */
let clockOffset = 0;
export function syncClock(serverNowIso) {
  clockOffset = new Date(serverNowIso).getTime() - Date.now();
}
export const now = () => Date.now() + clockOffset;

function span(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return t("countdown.days", { d, h: hr });
  if (hr > 0) return t("countdown.hours", { h: hr, m });
  return t("countdown.minutes", { m, s: s % 60 });
}

/** Countdown text to `dueIso`, and whether it is past. */
export function countdown(dueIso) {
  if (!dueIso) return { text: t("countdown.none"), over: false };
  const left = new Date(dueIso).getTime() - now();
  return left >= 0
    ? { text: t("countdown.left", { time: span(left) }), over: false }
    : { text: t("countdown.over", { time: span(-left) }), over: true };
}

/** A countdown cell that ticks every second while it is on the page. */
export function countdownCell(dueIso) {
  const el = h("span", { class: "countdown", "data-due": dueIso || "" });
  const paint = () => {
    const c = countdown(dueIso);
    el.textContent = c.text;
    el.classList.toggle("over", c.over);
    el.dataset.over = String(c.over);
  };
  paint();
  return el;
}

setInterval(() => {
  for (const el of document.querySelectorAll(".countdown[data-due]")) {
    const c = countdown(el.dataset.due || null);
    if (el.textContent !== c.text) el.textContent = c.text;
    el.classList.toggle("over", c.over);
    el.dataset.over = String(c.over);
  }
}, 1000);

/** A polite status line for screen readers and everyone else. */
export function announce(text, kind = "info") {
  const live = document.getElementById("status");
  live.textContent = text;
  live.className = `status ${kind}`;
}

export function errorText(e) {
  if (e && e.field) return t("error.field", { field: e.field, detail: e.detail });
  return t("error", { detail: (e && (e.detail || e.message)) || String(e) });
}

export function errorBox(e, retry) {
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, errorText(e)),
    retry ? h("button", { type: "button", onclick: retry }, t("retry")) : null,
  );
}

/**
 * A table with a text filter, optional select filters and an Excel export.
 *
 * columns: [{ key, label, text: row => string, cell?: row => Node, int?: true, width? }]
 * filters: [{ label, value: row => string, options: [[value, label]] }]
 * exporter: { name, sheet } for the generic export of the rows shown, and/or
 *           server: async (selected filter values) => ExportedFile for a service's own report.
 */
export function dataTable({ id, caption, columns, rows, filters = [], exporter, server }) {
  const wrap = h("section", { class: "table-block", "aria-labelledby": `${id}-caption`, "data-table": id });
  const textId = nextId("filter");
  const textInput = h("input", { id: textId, type: "search", "aria-describedby": `${textId}-help`, autocomplete: "off" });
  const controls = h(
    "div",
    { class: "controls" },
    h("div", { class: "field" }, h("label", { for: textId }, t("filter.text")), textInput, h("span", { id: `${textId}-help`, class: "help" }, t("filter.text.help"))),
  );
  const selects = filters.map((f) => {
    const sid = nextId("sel");
    const sel = h("select", { id: sid }, h("option", { value: "" }, t("filter.all")), f.options.map(([v, l]) => h("option", { value: v }, l)));
    controls.append(h("div", { class: "field" }, h("label", { for: sid }, f.label), sel));
    return { f, sel };
  });
  const count = h("p", { class: "count", "aria-live": "polite" });
  const buttons = h("div", { class: "actions" });
  const tbody = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", { id: `${id}-caption` }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    tbody,
  );
  let shown = rows;
  const render = () => {
    const needle = textInput.value.trim().toLowerCase();
    shown = rows.filter(
      (r) =>
        selects.every(({ f, sel }) => sel.value === "" || f.value(r) === sel.value) &&
        (needle === "" || columns.some((c) => String(c.text(r) ?? "").toLowerCase().includes(needle))),
    );
    tbody.replaceChildren(
      ...(shown.length === 0
        ? [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, t("empty")))]
        : shown.map((r) => h("tr", {}, columns.map((c) => h("td", c.int ? { class: "num" } : {}, c.cell ? c.cell(r) : c.text(r)))))),
    );
    count.textContent = t("filter.count", { shown: shown.length, total: rows.length });
  };
  textInput.addEventListener("input", render);
  for (const { sel } of selects) sel.addEventListener("change", render);
  const run = (button, make) => async () => {
    button.disabled = true;
    try {
      const file = await make();
      download(file);
      announce(t("export.done", { rows: file.rows, file: file.file_name }), "ok");
    } catch (e) {
      announce(t("export.failed", { detail: e.detail || e.message }), "error");
    } finally {
      button.disabled = false;
    }
  };
  if (exporter) {
    const b = h("button", { type: "button", "data-export": "table" }, t("export"));
    b.addEventListener(
      "click",
      run(b, () =>
        api("POST", "/exports/xlsx", {
          body: {
            file_name: exporter.name,
            sheet: exporter.sheet.slice(0, 31),
            columns: columns.map((c) => ({ header: c.label, width: c.width || 16 })),
            rows: shown.map((r) =>
              columns.map((c) => {
                const v = c.text(r);
                if (c.int && Number.isSafeInteger(v)) return v;
                return v === undefined || v === null || v === "" ? null : String(v);
              }),
            ),
          },
        }),
      ),
    );
    buttons.append(b);
  }
  if (server) {
    const b = h("button", { type: "button", "data-export": "server" }, server.label || t("export.server"));
    b.addEventListener("click", run(b, () => server.make(selects.map(({ sel }) => sel.value))));
    buttons.append(b);
  }
  wrap.append(controls, buttons, count, h("div", { class: "scroll", tabindex: "0", role: "region", "aria-labelledby": `${id}-caption` }, table));
  render();
  return wrap;
}
