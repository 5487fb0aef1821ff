// The HTTP API (/api/v1, see GET /api/v1/openapi.json), called with a bearer token: a participant's join
// token on the join page, the admin token on the organiser page.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class Api {
  constructor(token, base = "/api/v1") {
    this.token = token;
    this.base = base;
  }

  async request(method, path, { json, text, contentType } = {}) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (text !== undefined) {
      headers["Content-Type"] = contentType || "text/plain";
      body = text;
    }
    let response;
    try {
      response = await fetch(this.base + path, { method, headers, body, credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "unavailable", `network error: ${err.message}`);
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText, error.details);
    }
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, json) {
    return this.request("POST", path, { json: json ?? {} });
  }

  put(path, json) {
    return this.request("PUT", path, { json });
  }

  /** Every item of a paged list (follows next_cursor). */
  async all(path, limit = 500) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 100; page++) {
      const sep = path.includes("?") ? "&" : "?";
      const url = `${path}${sep}limit=${limit}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
      const data = await this.get(url);
      items.push(...data.items);
      cursor = data.next_cursor;
      if (!cursor) break;
    }
    return items;
  }
}
