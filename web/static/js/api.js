// api.js: the one way chatd's pages and worker call the JSON API.
// Works in windows and workers alike (it only needs fetch).

/** ApiError is a failed API call: the HTTP status (0 when the server could
 * not be reached) and the contract's error code and human message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
}

/** api calls method path with an optional JSON body and returns the decoded
 * JSON answer (null for 204). It throws ApiError on any failure, and lets an
 * AbortError through untouched. */
export async function api(method, path, body, { signal } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }
  let data = null;
  let raw = '';
  try {
    raw = await res.text();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The connection to the server broke off.');
  }
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const retry = Number.parseInt(res.headers.get('Retry-After') || '0', 10) || 0;
    throw new ApiError(
      res.status,
      e.code || `http_${res.status}`,
      e.message || `The server answered ${res.status} ${res.statusText}.`.replace(' .', '.'),
      retry,
    );
  }
  return data;
}

/** path builds an API path, escaping every interpolated value. */
export function path(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    out += encodeURIComponent(String(v)) + strings[i + 1];
  });
  return out;
}
