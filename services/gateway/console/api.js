// The console's only way to data: the gateway's /api/v1 with the signed-in
// caller's token. Nothing is cached: every answer is the caller's own, and
// a later sign-in must never see an earlier caller's rows.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.field = problem.field || "";
    this.detail = problem.detail || this.message;
  }
}

let token = null;
let onUnauthorized = () => {};

export function setToken(value) {
  token = value;
}

export function hasToken() {
  return token !== null;
}

/** Called when the gateway refuses the token (expired, revoked key, …). */
export function onSignInLost(handler) {
  onUnauthorized = handler;
}

function url(path, query) {
  const u = new URL(path.startsWith("/console/") ? path : `/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u;
}

async function read(response) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : { detail: await response.text() };
  if (!response.ok) {
    if (response.status === 401 && token !== null) onUnauthorized(body);
    throw new ApiError(response.status, body);
  }
  return body;
}

/** One API call. `body` is sent as JSON; `file` as the raw request body. */
export async function api(method, path, { query, body, file } = {}) {
  const headers = { Accept: "application/json" };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (file) {
    headers["Content-Type"] = file.type || "application/octet-stream";
    payload = file;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url(path, query), {
    method,
    headers,
    body: payload,
    cache: "no-store",
    credentials: "omit",
  });
  return read(response);
}

export const get = (path, query) => api("GET", path, { query });

/** Every page of a paged list (`page`/`page_size`/`total`), up to `max` rows. */
export async function getAll(path, query = {}, max = 5000) {
  const items = [];
  for (let page = 1; ; page++) {
    const r = await get(path, { ...query, page, page_size: 500 });
    items.push(...r.items);
    if (items.length >= r.total || r.items.length === 0 || items.length >= max) return { ...r, items };
  }
}

/** The console's own endpoints (sign-in), without the API prefix. */
export async function consoleCall(method, path, body) {
  const response = await fetch(url(path), {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  return read(response);
}

/** Hands an exported file (`ExportedFile`: base64 content) to the browser as a download. */
export function download(file) {
  const bytes = Uint8Array.from(atob(file.content_base64), (c) => c.charCodeAt(0));
  const blob = new Blob([bytes], { type: file.content_type });
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = file.file_name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/** The claims of a JWT, read without verifying (the gateway verifies). */
export function claims(jwt) {
  const part = jwt.split(".")[1];
  if (!part) throw new Error("not a JWT");
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}
