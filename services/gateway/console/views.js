// The views of each kind of organisation. Each reads only through the API
// with the caller's token; the services decide which rows the caller sees.

import { api, get, getAll } from "./api.js?v=__V__";
import { label, t } from "./i18n.js?v=__V__";
import { announce, countdownCell, dataTable, errorText, h, nextId, now, percent, svg, when, yesNo, yuan } from "./ui.js?v=__V__";

const ISSUE_TYPES = [
  "insufficient_supply",
  "late_delivery",
  "selective_delivery",
  "stopped_after_agreed_volume",
  "unsuitable_spec",
  "unreasonable_packaging",
  "unclear_batch_printing",
  "no_response",
];
const ISSUE_STATES = ["dispatched", "responded", "escalated", "feedback_given", "resolved", "false_report"];
const PROGRESS_CLASSES = ["zero", "slow", "normal", "completed", "over_volume"];

const options = (group, values) => values.map((v) => [v, label(group, v)]);

/** The organisation's name from the directory, else its id. */
const nameOf = (ctx, id) => (id && ctx.names.get(id)) || id || "";

/** The Beijing calendar day of an instant, as YYYY-MM-DD. */
function beijingDay(ms) {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------
// periods

export async function loadPeriods(ctx) {
  const projects = await getAll("/projects");
  ctx.periods = projects.items
    .flatMap((p) => p.periods.map((q) => ({ ...q, project_name: p.name, product_groups: p.product_groups })))
    .sort((a, b) => (a.starts_at < b.starts_at ? 1 : -1));
  const today = beijingDay(now());
  const running = ctx.periods.find((p) => p.first_day <= today && today <= p.last_day);
  ctx.period = ctx.period && ctx.periods.some((p) => p.period === ctx.period) ? ctx.period : (running || ctx.periods[0] || {}).period;
}

function periodPicker(ctx, rerender) {
  if (ctx.periods.length === 0) return h("p", {}, t("period.none"));
  const id = nextId("period");
  const sel = h(
    "select",
    { id, "data-period": "" },
    ctx.periods.map((p) =>
      h("option", { value: p.period, selected: p.period === ctx.period }, t("period.option", { code: p.project_code, number: p.number, from: p.first_day, to: p.last_day })),
    ),
  );
  sel.addEventListener("change", () => {
    ctx.period = sel.value;
    rerender();
  });
  return h("div", { class: "field period" }, h("label", { for: id }, t("period")), sel);
}

// ---------------------------------------------------------------------------
// issues, shared by every kind

/** The stage an issue waits on and when it is due. */
function currentDeadline(issue) {
  switch (issue.state) {
    case "dispatched":
      return { stage: "enterprise_response", due: issue.enterprise_due_at };
    case "responded":
      return { stage: "bureau_handling", due: issue.handling_due_at };
    case "escalated":
      return { stage: "province_handling", due: issue.handling_due_at };
    case "feedback_given":
      return { stage: "hospital_confirmation", due: issue.auto_resolve_at };
    default:
      return { stage: null, due: null };
  }
}

function issueColumns(ctx, { hospital }) {
  const cols = [
    { key: "issue_type", label: t("col.issue_type"), text: (r) => label("issue_type", r.issue_type), width: 18 },
    { key: "product", label: t("col.product"), text: (r) => `${r.product_name} ${r.spec || ""}`.trim(), width: 30 },
    { key: "national_code", label: t("col.national_code"), text: (r) => r.national_code, width: 24 },
  ];
  if (hospital) cols.push({ key: "hospital", label: t("col.hospital"), text: (r) => nameOf(ctx, r.hospital), width: 24 });
  cols.push(
    { key: "state", label: t("col.state"), text: (r) => label("issue_state", r.state), width: 16 },
    { key: "stage", label: t("col.stage"), text: (r) => label("stage", currentDeadline(r).stage), width: 24 },
    { key: "due", label: t("col.due_at"), text: (r) => when(currentDeadline(r).due), width: 18 },
    {
      key: "countdown",
      label: t("col.countdown"),
      text: (r) => (currentDeadline(r).due ? countdownCell(currentDeadline(r).due).textContent : ""),
      cell: (r) => countdownCell(currentDeadline(r).due),
      width: 18,
    },
    { key: "evidence", label: t("col.evidence"), text: (r) => (r.evidence || []).map((e) => e.file_name).join("、"), width: 24 },
    { key: "filed_at", label: t("col.filed_at"), text: (r) => when(r.filed_at), width: 18 },
  );
  return cols;
}

function issueTable(ctx, id, caption, items, { hospital }) {
  return dataTable({
    id,
    caption,
    columns: issueColumns(ctx, { hospital }),
    rows: items,
    filters: [
      { label: t("col.state"), value: (r) => r.state, options: options("issue_state", ISSUE_STATES) },
      { label: t("col.issue_type"), value: (r) => r.issue_type, options: options("issue_type", ISSUE_TYPES) },
    ],
    exporter: { name: `${t("issues.title")}_${beijingDay(now())}`, sheet: t("issues.title") },
  });
}

// ---------------------------------------------------------------------------
// bureau

function progressChart(groups, timeBp) {
  const rowH = 34;
  const left = 180;
  const width = 640;
  const barW = width - left - 90;
  const height = groups.length * rowH + 40;
  const x = (bp) => left + (Math.min(bp, 12000) / 12000) * barW;
  const titleId = nextId("chart-title");
  const descId = nextId("chart-desc");
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": `${titleId} ${descId}`, class: "chart", "data-chart": "progress" },
    svg("title", { id: titleId }, t("chart.title")),
    svg("desc", { id: descId }, t("chart.desc", { time: percent(timeBp) })),
    groups.map((g, i) => {
      const y = 10 + i * rowH;
      const lag = g.progress < timeBp;
      return svg(
        "g",
        { "data-group": g.group, "data-lagging": String(lag) },
        svg("title", {}, t("chart.group", { group: g.group, progress: percent(g.progress) })),
        svg("text", { x: left - 8, y: y + 17, "text-anchor": "end", class: "chart-label" }, g.group.length > 14 ? `${g.group.slice(0, 13)}…` : g.group),
        svg("rect", { x: left, y: y + 4, width: barW * (10000 / 12000), height: 18, class: "chart-track" }),
        svg("rect", { x: left, y: y + 4, width: Math.max(1, x(g.progress) - left), height: 18, class: lag ? "chart-bar lag" : "chart-bar" }),
        svg("text", { x: x(g.progress) + 6, y: y + 18, class: "chart-value" }, percent(g.progress)),
      );
    }),
    svg("line", { x1: x(timeBp), x2: x(timeBp), y1: 4, y2: height - 26, class: "chart-time" }),
    svg("text", { x: x(timeBp), y: height - 8, "text-anchor": "middle", class: "chart-time-label" }, t("chart.time", { time: percent(timeBp) })),
  );
  return chart;
}

/** Accepted over agreed, in basis points (integer arithmetic). */
const ratioBp = (accepted, agreed) => (agreed > 0 ? Math.floor((accepted * 10000) / agreed) : 0);

export async function bureauDashboard(ctx, main, rerender) {
  main.append(periodPicker(ctx, rerender));
  if (!ctx.period) return;
  const report = await getAll(`/periods/${ctx.period}/progress`);
  const timeBp = report.time_progress_bp;
  const groups = new Map();
  const hospitals = new Map();
  for (const r of report.items) {
    const g = groups.get(r.product_group) || { group: r.product_group, agreed: 0, accepted: 0 };
    g.agreed += r.agreed_quantity;
    g.accepted += r.accepted_quantity;
    groups.set(r.product_group, g);
    const k = r.hospital;
    const hsp = hospitals.get(k) || { hospital: k, name: r.hospital_name, region: r.hospital_region, agreed: 0, accepted: 0, amount: 0n };
    hsp.agreed += r.agreed_quantity;
    hsp.accepted += r.accepted_quantity;
    hsp.amount += BigInt(r.accepted_amount_fen);
    hospitals.set(k, hsp);
  }
  const period = ctx.periods.find((p) => p.period === ctx.period) || {};
  const groupName = new Map((period.product_groups || []).map((g) => [g.code, g.name]));
  const groupList = [...groups.values()]
    .map((g) => ({ ...g, code: g.group, group: groupName.get(g.group) || g.group, progress: ratioBp(g.accepted, g.agreed) }))
    .sort((a, b) => a.code.localeCompare(b.code));
  main.append(
    h("section", { class: "card", "aria-labelledby": "chart-heading" }, h("h2", { id: "chart-heading" }, t("chart.title")), groupList.length ? progressChart(groupList, timeBp) : h("p", {}, t("chart.none"))),
  );
  const lagging = [...hospitals.values()].map((x) => ({ ...x, progress: ratioBp(x.accepted, x.agreed) })).filter((x) => x.agreed > 0 && x.progress < timeBp).sort((a, b) => a.progress - b.progress);
  main.append(
    h("h2", {}, t("lagging.title")),
    dataTable({
      id: "lagging",
      caption: t("lagging.caption", { time: percent(timeBp) }),
      columns: [
        { key: "name", label: t("col.hospital"), text: (r) => r.name, width: 28 },
        { key: "region", label: t("col.region"), text: (r) => r.region, width: 10 },
        { key: "agreed", label: t("col.agreed_quantity"), text: (r) => r.agreed, int: true },
        { key: "accepted", label: t("col.accepted_quantity"), text: (r) => r.accepted, int: true },
        { key: "amount", label: t("col.accepted_amount"), text: (r) => yuan(r.amount) },
        { key: "progress", label: t("col.progress"), text: (r) => percent(r.progress) },
      ],
      rows: lagging,
      exporter: { name: `${t("lagging.title")}_${beijingDay(now())}`, sheet: t("lagging.title") },
      server: {
        label: t("export.server"),
        // The agreements service's full progress report of the caller's region.
        make: () => get(`/periods/${ctx.period}/progress/export`),
      },
    }),
  );
}

export async function bureauIssues(ctx, main) {
  const [list, ledger] = await Promise.all([getAll("/issues"), get("/issues/ledger", { by: "hospital" })]);
  main.append(issueTable(ctx, "issues", t("issues.caption"), list.items, { hospital: true }));
  const bj = new Date(now() + 8 * 3600_000);
  const year = bj.getUTCFullYear();
  const quarter = Math.floor(bj.getUTCMonth() / 3) + 1;
  main.append(
    h("h2", {}, t("issues.ledger")),
    dataTable({
      id: "issue-ledger",
      caption: t("issues.ledger.caption"),
      columns: [
        { key: "name", label: t("col.name"), text: (r) => r.name || nameOf(ctx, r.key), width: 28 },
        { key: "filed", label: t("col.filed"), text: (r) => r.filed, int: true },
        { key: "response_rate", label: t("col.response_rate"), text: (r) => percent(r.response_rate_bp) },
        { key: "resolution_rate", label: t("col.resolution_rate"), text: (r) => percent(r.resolution_rate_bp) },
        { key: "overdue", label: t("col.overdue"), text: (r) => `${r.overdue_enterprise}/${r.overdue_bureau}/${r.overdue_province}`, width: 22 },
        { key: "false_reports", label: t("col.false_reports"), text: (r) => r.false_reports, int: true },
      ],
      rows: ledger.rows,
      exporter: { name: `${t("issues.ledger")}_${beijingDay(now())}`, sheet: t("issues.ledger") },
      server: { label: t("issues.ledger.export"), make: () => get("/issues/ledger/export", { year, quarter }) },
    }),
  );
}

export async function bureauPrepayment(ctx, main, rerender) {
  main.append(periodPicker(ctx, rerender));
  const list = await getAll("/prepayment/ledgers", { period: ctx.period });
  const states = ["calculated", "approved", "disbursed", "closed", "blocked"];
  main.append(
    dataTable({
      id: "prepayment",
      caption: t("prepayment.caption"),
      columns: [
        { key: "hospital", label: t("col.hospital"), text: (r) => nameOf(ctx, r.hospital), width: 28 },
        { key: "state", label: t("col.ledger_state"), text: (r) => label("ledger_state", r.state) },
        { key: "agreed", label: t("col.agreed_amount"), text: (r) => yuan(r.agreed_amount_fen) },
        { key: "ratio", label: t("col.ratio"), text: (r) => percent(r.ratio) },
        { key: "amount", label: t("col.amount"), text: (r) => yuan(r.amount_fen) },
        { key: "deducted", label: t("col.deducted"), text: (r) => yuan(r.deducted_fen) },
        { key: "balance", label: t("col.balance"), text: (r) => yuan(r.balance_fen) },
        { key: "disburse_by", label: t("col.disburse_by"), text: (r) => when(r.disburse_by) },
        { key: "late", label: t("col.late"), text: (r) => yesNo(r.late) },
      ],
      rows: list.items,
      filters: [{ label: t("col.ledger_state"), value: (r) => r.state, options: options("ledger_state", states) }],
      exporter: { name: `${t("view.prepayment")}_${beijingDay(now())}`, sheet: t("view.prepayment") },
      server: { label: t("prepayment.export"), make: () => get("/prepayment/summary/export", { period: ctx.period }) },
    }),
  );
}

export async function bureauReconciliation(ctx, main, rerender) {
  main.append(periodPicker(ctx, rerender));
  const report = await get("/reconciliation", { period: ctx.period });
  main.append(
    h("p", { class: report.clean ? "badge ok" : "badge warn", "data-clean": String(report.clean) }, t(report.clean ? "recon.clean" : "recon.unclean")),
    dataTable({
      id: "reconciliation",
      caption: t("recon.caption"),
      columns: [
        { key: "measure", label: t("col.measure"), text: (r) => label("measure", r.measure) },
        { key: "source", label: t("col.source"), text: (r) => label("service", r.source) },
        { key: "mirror", label: t("col.mirror"), text: (r) => label("service", r.mirror) },
        { key: "compared", label: t("col.compared"), text: (r) => yesNo(r.compared) },
        { key: "source_total", label: t("col.source_total"), text: (r) => (r.measure.endsWith("_fen") ? yuan(r.source_total) : r.source_total), int: true },
        { key: "mirror_total", label: t("col.mirror_total"), text: (r) => (r.measure.endsWith("_fen") ? yuan(r.mirror_total) : r.mirror_total), int: true },
        { key: "differences", label: t("col.differences"), text: (r) => r.differences.length, int: true },
      ],
      rows: report.checks,
      exporter: { name: `${t("view.reconciliation")}_${beijingDay(now())}`, sheet: t("view.reconciliation") },
    }),
  );
}

/** Credit records and data findings of the supervision service. */
export async function bureauSupervision(ctx, main) {
  const [records, findings] = await Promise.all([getAll("/supervision/credit-records"), getAll("/supervision/findings")]);
  const kinds = ["offline_sales", "short_supply", "refusing_remote_areas", "selective_delivery", "repeated_issues", "stopping_after_agreed_volume", "malicious_price_rise"];
  main.append(
    dataTable({
      id: "credit-records",
      caption: t("supervision.caption"),
      columns: [
        { key: "enterprise", label: t("col.enterprise"), text: (r) => r.enterprise_name || nameOf(ctx, r.enterprise), width: 28 },
        { key: "kind", label: t("col.kind"), text: (r) => label("credit_kind", r.kind), width: 20 },
        { key: "level", label: t("col.level"), text: (r) => r.level_name, width: 12 },
        { key: "state", label: t("col.state"), text: (r) => label("credit_state", r.state) },
        { key: "description", label: t("col.detail"), text: (r) => r.description, width: 40 },
        { key: "rectify_due_at", label: t("col.rectify_due"), text: (r) => when(r.rectify_due_at) },
        {
          key: "countdown",
          label: t("col.countdown"),
          text: (r) => (r.state === "open" && r.rectify_due_at ? countdownCell(r.rectify_due_at).textContent : ""),
          cell: (r) => (r.state === "open" && r.rectify_due_at ? countdownCell(r.rectify_due_at) : ""),
        },
        { key: "filed_at", label: t("col.recorded_at"), text: (r) => when(r.filed_at) },
      ],
      rows: records.items,
      filters: [
        { label: t("col.state"), value: (r) => r.state, options: options("credit_state", ["open", "rectified", "closed"]) },
        { label: t("col.kind"), value: (r) => r.kind, options: options("credit_kind", kinds) },
      ],
      exporter: { name: `${t("supervision.caption")}_${beijingDay(now())}`, sheet: t("supervision.caption") },
    }),
    h("h2", {}, t("supervision.findings")),
    dataTable({
      id: "findings",
      caption: t("supervision.findings"),
      columns: [
        { key: "kind", label: t("col.kind"), text: (r) => label("finding_kind", r.kind), width: 20 },
        { key: "enterprise", label: t("col.enterprise"), text: (r) => r.enterprise_name, width: 28 },
        { key: "hospital", label: t("col.hospital"), text: (r) => r.hospital_name, width: 28 },
        { key: "national_code", label: t("col.national_code"), text: (r) => r.national_code || "", width: 24 },
        { key: "detail", label: t("col.detail"), text: (r) => r.detail, width: 40 },
        { key: "detected_at", label: t("col.recorded_at"), text: (r) => when(r.detected_at) },
      ],
      rows: findings.items,
      filters: [{ label: t("col.kind"), value: (r) => r.kind, options: options("finding_kind", ["selective_delivery", "stop_after_volume"]) }],
      exporter: { name: `${t("supervision.findings")}_${beijingDay(now())}`, sheet: t("supervision.findings") },
    }),
  );
}

// ---------------------------------------------------------------------------
// hospital

export async function hospitalAgreements(ctx, main, rerender) {
  main.append(periodPicker(ctx, rerender));
  const list = await getAll("/agreements", { period: ctx.period });
  const states = ["draft", "hospital_confirmed", "manufacturer_confirmed", "distributor_confirmed", "effective", "rejected", "superseded"];
  main.append(
    dataTable({
      id: "agreements",
      caption: t("agreements.caption"),
      columns: [
        { key: "manufacturer", label: t("col.manufacturer"), text: (r) => r.manufacturer_name, width: 28 },
        { key: "distributors", label: t("col.distributor"), text: (r) => r.distributors.map((d) => d.distributor_name || nameOf(ctx, d.distributor)).join("、"), width: 28 },
        { key: "version", label: t("col.version"), text: (r) => r.version, int: true },
        { key: "state", label: t("col.state"), text: (r) => label("agreement_state", r.state) },
        { key: "lines", label: t("col.lines"), text: (r) => r.lines.length, int: true },
        { key: "amount", label: t("col.amount_total"), text: (r) => yuan(r.amount_fen) },
        { key: "effective_at", label: t("col.effective_at"), text: (r) => when(r.effective_at) },
      ],
      rows: list.items,
      filters: [{ label: t("col.state"), value: (r) => r.state, options: options("agreement_state", states) }],
      exporter: { name: `${t("view.agreements")}_${beijingDay(now())}`, sheet: t("view.agreements") },
    }),
  );
}

export async function hospitalOrders(ctx, main) {
  const list = await getAll("/orders");
  main.append(
    dataTable({
      id: "orders",
      caption: t("orders.caption"),
      columns: [
        { key: "order", label: t("col.order"), text: (r) => r.external_id || r.order, width: 36 },
        { key: "distributor", label: t("col.distributor"), text: (r) => nameOf(ctx, r.distributor), width: 28 },
        { key: "source", label: t("col.source_kind"), text: (r) => label("order_source", r.source) },
        { key: "state", label: t("col.state"), text: (r) => label("order_state", r.state) },
        { key: "lines", label: t("col.lines"), text: (r) => r.lines.length, int: true },
        { key: "amount", label: t("col.amount_total"), text: (r) => yuan(r.total_amount_fen) },
        { key: "placed_at", label: t("col.placed_at"), text: (r) => when(r.placed_at) },
      ],
      rows: list.items,
      filters: [{ label: t("col.state"), value: (r) => r.state, options: options("order_state", ["placed", "confirmed", "refused"]) }],
      exporter: { name: `${t("view.orders")}_${beijingDay(now())}`, sheet: t("view.orders") },
    }),
  );
}

function field(labelText, control, help) {
  const id = control.id || nextId("f");
  control.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) control.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, help ? h("span", { id: helpId, class: "help" }, help) : null);
}

function checkbox(labelText, name) {
  const id = nextId(name);
  return h("div", { class: "check" }, h("input", { id, name, type: "checkbox" }), h("label", { for: id }, labelText));
}

/** The Beijing wall time of `ms`, as a datetime-local value. */
const beijingLocal = (ms) => new Date(ms + 8 * 3600_000).toISOString().slice(0, 16);

async function issueForm(ctx, onFiled) {
  const supply = ctx.period ? await get(`/periods/${ctx.period}/supply-list`) : { items: [] };
  const product = h(
    "select",
    { name: "national_code", required: true },
    supply.items.map((i) => h("option", { value: i.national_code }, `${i.generic_name} ${i.spec_model}（${i.manufacturer_name}）`)),
  );
  const quantity = h("input", { name: "quantity", type: "number", min: "1", step: "1", value: "1", required: true, inputmode: "numeric" });
  const type = h("select", { name: "issue_type" }, ISSUE_TYPES.map((v) => h("option", { value: v }, label("issue_type", v))));
  const occurred = h("input", { name: "occurred_at", type: "datetime-local", value: beijingLocal(now()), max: beijingLocal(now()), required: true });
  const scope = h("input", { name: "impact_scope", type: "text", required: true, maxlength: "500" });
  const statement = h("textarea", { name: "statement", rows: "4", required: true, maxlength: "4000" });
  const files = h("input", { name: "evidence", type: "file", multiple: true, accept: "application/pdf,image/jpeg,image/png" });
  const submit = h("button", { type: "submit" }, t("file.submit"));
  const form = h(
    "form",
    { class: "card form", "aria-labelledby": "file-heading", novalidate: true },
    h("h2", { id: "file-heading" }, t("file.title")),
    h("p", {}, t("file.intro")),
    field(t("file.product"), product),
    field(t("file.quantity"), quantity),
    field(t("file.type"), type),
    field(t("file.occurred"), occurred),
    field(t("file.scope"), scope),
    field(t("file.statement"), statement),
    checkbox(t("file.sealed"), "statement_sealed"),
    field(t("file.evidence"), files, t("file.evidence.help")),
    checkbox(t("file.evidence_sealed"), "evidence_sealed"),
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const [control, name] of [
      [scope, t("file.scope")],
      [statement, t("file.statement")],
    ]) {
      if (control.value.trim() === "") {
        announce(t("file.required", { field: name }), "error");
        control.setAttribute("aria-invalid", "true");
        control.focus();
        return;
      }
      control.removeAttribute("aria-invalid");
    }
    submit.disabled = true;
    try {
      const evidence = [];
      for (const file of files.files) {
        announce(t("file.uploading", { name: file.name }));
        const view = await api("POST", "/issues/evidence", {
          query: { file_name: file.name, sealed: form.elements.evidence_sealed.checked },
          file,
        });
        evidence.push(view.evidence);
      }
      const issue = await api("POST", "/issues", {
        body: {
          national_code: product.value,
          quantity: Number.parseInt(quantity.value, 10),
          issue_type: type.value,
          occurred_at: new Date(`${occurred.value}:00+08:00`).toISOString(),
          impact_scope: scope.value.trim(),
          statement: statement.value.trim(),
          statement_sealed: form.elements.statement_sealed.checked,
          evidence,
        },
      });
      form.reset();
      announce(t("file.done", { due: when(issue.enterprise_due_at) }), "ok");
      await onFiled(issue);
    } catch (e) {
      const named = e.field && form.elements[e.field.split(/[.[]/)[0]];
      if (named && named.setAttribute) {
        named.setAttribute("aria-invalid", "true");
        named.focus();
      }
      announce(errorText(e), "error");
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function hospitalIssues(ctx, main, rerender) {
  const list = await getAll("/issues");
  const listBox = h("div", {}, issueTable(ctx, "my-issues", t("my_issues.caption"), list.items, { hospital: false }));
  const form = await issueForm(ctx, async () => {
    const fresh = await getAll("/issues");
    listBox.replaceChildren(issueTable(ctx, "my-issues", t("my_issues.caption"), fresh.items, { hospital: false }));
  });
  main.append(form, listBox);
  void rerender;
}

// ---------------------------------------------------------------------------
// enterprises

export async function enterpriseDue(ctx, main) {
  // The directory an enterprise reads names no hospital; the hospitals it
  // serves are named on its relations.
  const [list, relations] = await Promise.all([get("/issues/work-list"), getAll("/relations")]);
  for (const r of relations.items) if (!ctx.names.has(r.hospital)) ctx.names.set(r.hospital, r.hospital_name);
  main.append(
    dataTable({
      id: "due",
      caption: t("due.caption"),
      columns: [
        { key: "issue_type", label: t("col.issue_type"), text: (r) => label("issue_type", r.issue_type), width: 18 },
        { key: "product", label: t("col.product"), text: (r) => r.product_name, width: 28 },
        { key: "national_code", label: t("col.national_code"), text: (r) => r.national_code, width: 24 },
        { key: "hospital", label: t("col.hospital"), text: (r) => nameOf(ctx, r.hospital), width: 24 },
        { key: "stage", label: t("col.stage"), text: (r) => label("stage", r.stage), width: 24 },
        { key: "due", label: t("col.due_at"), text: (r) => when(r.due_at) },
        { key: "countdown", label: t("col.countdown"), text: (r) => countdownCell(r.due_at).textContent, cell: (r) => countdownCell(r.due_at) },
      ],
      rows: list.items,
      filters: [{ label: t("col.issue_type"), value: (r) => r.issue_type, options: options("issue_type", ISSUE_TYPES) }],
      exporter: { name: `${t("view.due")}_${beijingDay(now())}`, sheet: t("view.due") },
    }),
  );
}

function relationColumns(ctx) {
  return [
    { key: "hospital", label: t("col.hospital"), text: (r) => r.hospital_name, width: 28 },
    { key: "national_code", label: t("col.national_code"), text: (r) => r.national_code, width: 24 },
    { key: "manufacturer", label: t("col.manufacturer"), text: (r) => nameOf(ctx, r.manufacturer), width: 28 },
    { key: "distributor", label: t("col.distributor"), text: (r) => r.distributor_name, width: 28 },
    { key: "state", label: t("col.state"), text: (r) => label("relation_state", r.state) },
    { key: "selected_at", label: t("col.selected_at"), text: (r) => when(r.selected_at) },
  ];
}

export async function enterpriseRelations(ctx, main, rerender) {
  main.append(periodPicker(ctx, rerender));
  const list = await getAll("/relations", { period: ctx.period });
  main.append(
    dataTable({
      id: "relations",
      caption: t("relations.caption"),
      columns: relationColumns(ctx),
      rows: list.items,
      filters: [{ label: t("col.state"), value: (r) => r.state, options: options("relation_state", ["pending", "active", "refused", "ended", "cancelled"]) }],
      exporter: { name: `${t("view.relations")}_${beijingDay(now())}`, sheet: t("view.relations") },
    }),
  );
}

export async function enterprisePending(ctx, main) {
  const work = await get("/distribution/work-list");
  main.append(
    h("h2", {}, t("pending.relations")),
    dataTable({
      id: "pending-relations",
      caption: t("pending.relations"),
      columns: relationColumns(ctx),
      rows: work.relations,
      exporter: { name: `${t("pending.relations")}_${beijingDay(now())}`, sheet: t("view.pending") },
    }),
    h("h2", {}, t("pending.authorisations")),
    dataTable({
      id: "pending-authorisations",
      caption: t("pending.authorisations"),
      columns: [
        { key: "manufacturer", label: t("col.manufacturer"), text: (r) => r.manufacturer_name, width: 28 },
        { key: "distributor", label: t("col.distributor"), text: (r) => r.distributor_name, width: 28 },
        { key: "products", label: t("col.products"), text: (r) => r.products.join("、"), width: 40 },
        { key: "areas", label: t("col.areas"), text: (r) => r.areas.join("、"), width: 20 },
        { key: "state", label: t("col.state"), text: (r) => label("authorisation_state", r.state) },
        { key: "granted_at", label: t("col.granted_at"), text: (r) => when(r.granted_at) },
      ],
      rows: work.authorisations,
      exporter: { name: `${t("pending.authorisations")}_${beijingDay(now())}`, sheet: t("view.pending") },
    }),
    h("h2", {}, t("pending.changes")),
    dataTable({
      id: "pending-changes",
      caption: t("pending.changes"),
      columns: [
        { key: "hospital", label: t("col.hospital"), text: (r) => nameOf(ctx, r.hospital), width: 28 },
        { key: "national_code", label: t("col.national_code"), text: (r) => r.national_code, width: 24 },
        { key: "from", label: t("col.from_distributor"), text: (r) => nameOf(ctx, r.from_distributor), width: 28 },
        { key: "to", label: t("col.to_distributor"), text: (r) => nameOf(ctx, r.to_distributor), width: 28 },
        { key: "reason", label: t("col.reason"), text: (r) => r.reason, width: 30 },
        { key: "state", label: t("col.state"), text: (r) => label("change_state", r.state) },
        { key: "effective_from", label: t("col.effective_from"), text: (r) => when(r.effective_from) },
      ],
      rows: work.changes,
      exporter: { name: `${t("pending.changes")}_${beijingDay(now())}`, sheet: t("view.pending") },
    }),
  );
}

/** The views each kind of organisation has, in menu order. */
export function viewsFor(kind, supervision) {
  switch (kind) {
    case "bureau":
    case "operator":
      return [
        ["dashboard", bureauDashboard],
        ["issues", bureauIssues],
        ["prepayment", bureauPrepayment],
        ["reconciliation", bureauReconciliation],
        ...(supervision && kind === "bureau" ? [["supervision", bureauSupervision]] : []),
      ];
    case "hospital":
      return [
        ["my_issues", hospitalIssues],
        ["agreements", hospitalAgreements],
        ["orders", hospitalOrders],
      ];
    case "manufacturer":
    case "distributor":
      return [
        ["due", enterpriseDue],
        ["relations", enterpriseRelations],
        ["pending", enterprisePending],
      ];
    default:
      return [];
  }
}

