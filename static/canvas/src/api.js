// JSON calls to /api/v1 with the session cookie and the CSRF token.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `request failed (${status})`);
    this.status = status;
    this.body = body || {};
  }

  get errors() {
    return Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

export function makeApi(csrfToken) {
  async function call(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text.slice(0, 200) };
      }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  return {
    get: (url) => call("GET", url),
    post: (url, body) => call("POST", url, body),
    put: (url, body) => call("PUT", url, body),
  };
}
