/**
 * Every Redis key the product uses, in one place (SPEC §9). A prefix lets several deployments (or test runs)
 * share one Redis. Proxy keys are addressed by the canonical proxy URL, as the seeds name them.
 */
export type RedisKeys = ReturnType<typeof redisKeys>;

export function redisKeys(prefix = '') {
  const p = prefix;
  return {
    prefix: p,
    /** proxyUrl held for a session between provision and CONNECTED. */
    sessionTemp: (sessionId: string) => `${p}session:temp:${sessionId}`,
    /** THE sticky binding: phone → proxyUrl. */
    phoneProxy: (phone: string) => `${p}phone:proxy:${phone}`,
    /** HASH { phone, proxy, status, createdAt, connectedAt, lastPing, ... } */
    session: (sessionId: string) => `${p}session:${sessionId}`,
    /** SET of session ids that are connected (or being kept connected). */
    sessionsActive: () => `${p}sessions:active`,
    /** SET of every session id the product knows (any status except deleted). */
    sessionsAll: () => `${p}sessions:all`,
    /** The proxy slot a session holds (proxyUrl); makes reserve/release idempotent under retries. */
    sessionSlot: (sessionId: string) => `${p}session:slot:${sessionId}`,
    proxiesAll: () => `${p}proxies:all`,
    /** SET of healthy (status OK) proxies. */
    proxiesAvailable: () => `${p}proxies:available`,
    proxyCounter: (proxyUrl: string) => `${p}counter:proxy:${proxyUrl}`,
    proxyStatus: (proxyUrl: string) => `${p}proxy:status:${proxyUrl}`,
    proxyBadAt: (proxyUrl: string) => `${p}proxy:bad_at:${proxyUrl}`,
    /** SET of session ids holding a slot on the proxy (the counter is kept equal to its size). */
    proxySessions: (proxyUrl: string) => `${p}proxy:sessions:${proxyUrl}`,
    sessionQr: (sessionId: string) => `${p}session:qr:${sessionId}`,
    sessionEvents: (sessionId: string) => `${p}session:events:${sessionId}`,
    sessionOutbox: (sessionId: string) => `${p}session:outbox:${sessionId}`,
    /** phone → the session id that owns it (at most one live session per phone). */
    phoneSession: (phone: string) => `${p}phone:session:${phone}`,
    /** SET of a tenant's session ids. */
    tenantSessions: (tenant: string) => `${p}tenant:sessions:${tenant}`,
    /** Marker of a webhook event already turned into a signal (de-duplication by eventId). */
    webhookEventSeen: (eventId: string) => `${p}webhook:seen:${eventId}`,
    phoneQueue: (phone: string) => `${p}queue:session:${phone}`,
    gatewayJobs: () => `${p}gateway:jobs`,
  };
}
