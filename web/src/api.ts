import { validationText } from "./errors";
// Calls to the apps server. The access token comes from the URL the app printed (?token=...)
// and goes with every call.
const params = new URLSearchParams(window.location.search);
export const token = params.get("token") ?? "";

export class ApiError extends Error {
  constructor(
    message: string,
    public status: number,
  ) {
    super(message);
  }
}

export async function api<T = any>(path: string, options: { method?: string; body?: unknown; raw?: Blob } = {}): Promise<T> {
  const headers: Record<string, string> = { "X-Deeptoolbox-Token": token };
  let body: BodyInit | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const response = await fetch(path, { method: options.method ?? (body ? "POST" : "GET"), headers, body });
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : validationText(data.detail);
    throw new ApiError(detail, response.status);
  }
  return data as T;
}
