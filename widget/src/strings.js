// Every visible label comes from the server's catalogs (GET /widget/strings.json).
// The widget carries no text of its own: a key without a string shows the key.
import { isObject } from "./util.js";

export class Strings {
  constructor() {
    this.locale = null; // as the server names it: "zh_CN" | "en"
    this.table = {};
    this.loaded = false;
  }

  t(key, params) {
    const raw = typeof this.table[key] === "string" ? this.table[key] : key;
    if (!params) return raw;
    return raw.replace(/\{(\w+)\}/g, (whole, name) =>
      Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
    );
  }

  apply(locale, table) {
    if (!isObject(table)) return false;
    const clean = {};
    for (const [k, v] of Object.entries(table)) if (typeof v === "string") clean[k] = v;
    this.table = clean;
    if (typeof locale === "string" && locale) this.locale = locale;
    this.loaded = true;
    return true;
  }
}

export async function fetchStrings(server, locale, timeoutMs = 8000) {
  const url = `${server}/widget/strings.json?locale=${encodeURIComponent(locale || "")}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(url, {
      signal: abort.signal,
      credentials: "omit",
      headers: { Accept: "application/json" },
    });
    if (!res.ok) throw new Error(`strings.json: HTTP ${res.status}`);
    const body = await res.json();
    if (!isObject(body) || !isObject(body.strings)) throw new Error("strings.json: bad shape");
    return { locale: typeof body.locale === "string" ? body.locale : null, strings: body.strings };
  } finally {
    clearTimeout(timer);
  }
}
