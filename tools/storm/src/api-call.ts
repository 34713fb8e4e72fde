/** One call of the mock API, as both pipelines' workers make it (Node's fetch: keep-alive, no connection cap). */
export async function callApi(apiUrl: string, tenant: string, jobId: string): Promise<{ ok: boolean; status: number; retryAfterMs?: number }> {
  try {
    const res = await fetch(`${apiUrl}/call`, { method: 'POST', headers: { 'x-tenant': tenant, 'x-job': jobId } });
    await res.arrayBuffer();
    const after = res.headers.get('retry-after');
    const seconds = after !== null && /^\d+$/.test(after) ? Number(after) : undefined;
    return { ok: res.ok, status: res.status, ...(seconds !== undefined ? { retryAfterMs: seconds * 1000 } : {}) };
  } catch {
    return { ok: false, status: 0 };
  }
}
