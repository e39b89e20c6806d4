// Identifiers the protocol accepts: 22 to 64 characters of A-Z a-z 0-9 _ -.
export const ID_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

// 16 random bytes as base64url: 22 characters. getRandomValues, unlike randomUUID,
// also works on plain-http host pages.
export function randomId(bytes = 16) {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  let bin = "";
  for (const b of buf) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The server names locales the Babel way (zh_CN); HTTP and auth take BCP 47 (zh-CN).
export function toBcp47(locale) {
  return String(locale || "").replace(/_/g, "-");
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function str(value) {
  return typeof value === "string" ? value : "";
}
