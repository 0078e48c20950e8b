/** Helpers for the messaging tests (issue 7): provisioning a connected session and gap statistics. */
import type { Stack } from './stack.js';
import { apiClient } from '../../api/client/index.js';
import { redisKeys } from '../../common/redis-keys.js';
import { OutboxStore } from '../../state/outbox.js';
import { API_KEY, waitFor } from './stack.js';

/**
 * Provision → QR → scan → connected, through the typed client generated from the OpenAPI document (api/client/):
 * a drift between the API and its contract breaks this at compile time or here.
 */
export async function connectedSession(stack: Stack, sessionId: string, phone: string, apiKey = API_KEY) {
  const api = apiClient(stack.apiUrl, apiKey);
  const provisioned = await api.POST('/api/sessions/provision', { body: { sessionId, phone } });
  if (provisioned.response.status !== 201 || !provisioned.data)
    throw new Error(`provision ${sessionId}: ${provisioned.response.status} ${JSON.stringify(provisioned.error)}`);
  const id = { params: { path: { id: provisioned.data.sessionId } } };
  const qr = await waitFor(`a QR for ${sessionId}`, async () => (await api.GET('/api/sessions/{id}/qr', id)).data?.qr);
  await stack.sim.scan(qr, phone);
  await waitFor(
    `${sessionId} connected`,
    async () => (await api.GET('/api/sessions/{id}/status', id)).data?.status === 'connected',
    40_000,
    150,
  );
}

export function gaps(times: number[]): number[] {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.slice(1).map((t, i) => t - sorted[i]!);
}

export function describeGaps(label: string, values: number[], meanMs: number): string {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const lines = [
    `${label}: n=${values.length} min=${min} mean=${mean.toFixed(0)} max=${max} ms (configured mean ${meanMs}, ±30% → ${Math.round(meanMs * 0.7)}..${Math.round(meanMs * 1.3)})`,
  ];
  const lo = Math.floor(Math.min(min, meanMs * 0.7) / 100) * 100;
  const hi = Math.ceil(Math.max(max, meanMs * 1.3) / 100) * 100;
  for (let b = lo; b < hi; b += 100) {
    const n = values.filter((v) => v >= b && v < b + 100).length;
    lines.push(`  ${String(b).padStart(5)}-${String(b + 99).padEnd(5)} ${'#'.repeat(n)} ${n || ''}`);
  }
  return lines.join('\n');
}

/**
 * Ends the dispatcher workflows of a test's sessions. Stack.stop() deletes sessions and stops the orchestrator at
 * once, before an idle dispatcher has stepped again to notice; without this they would linger on the dev server.
 */
export async function terminateDispatchers(stack: Stack, sessionIds: string[]): Promise<void> {
  for (const id of sessionIds) {
    await stack.temporal.workflow
      .getHandle(`e2e-${stack.id}:dispatch:${id}`)
      .terminate('test finished')
      .catch(() => undefined);
  }
}

/**
 * Waits until nothing of these sessions can still be sent: no message waiting for its dispatcher (except those
 * `scheduled` for a later window, when `allowScheduled`), nothing queued or in flight in a worker outbox. After this,
 * a message counted at the simulator can no longer be followed by a duplicate.
 */
export async function waitForQuiet(
  stack: Stack,
  sessionIds: string[],
  opts: { allowScheduled?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  const outbox = new OutboxStore(stack.redis, stack.prefix);
  await waitFor(
    `nothing left to send for ${sessionIds.join(', ')}`,
    async () => {
      for (const id of sessionIds) {
        const c = await outbox.counts(id);
        if (c.queued > 0 || c.inflight > 0) return false;
        if (!opts.allowScheduled && (await stack.redis.llen(redisKeys(stack.prefix).dispatchPending(id))) > 0)
          return false;
      }
      return true;
    },
    opts.timeoutMs ?? 30_000,
    100,
  );
}
