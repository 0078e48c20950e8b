/**
 * The setup the messaging feature suites share: a stack with two tenants, the customer's webhook endpoint
 * registered, one session provisioned and scanned to connected, and the simulator's control API (the contacts'
 * side). Registers the suite's before/after hooks; call it inside `describe`.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { startControlApi, type ControlApi } from '../../simulator/control-api.js';
import { ClientReceiver, SECRET } from './client-receiver.js';
import { connectedSession, terminateDispatchers } from './messaging.js';
import { Stack, TENANT_KEY, type StackOptions } from './stack.js';

/** A second tenant, for the wall checks. */
export const OTHER_KEY = 'test-other-tenant-key-0123456789ab';

export interface ConnectedSuite {
  readonly stack: Stack;
  readonly control: ControlApi;
  readonly receiver: ClientReceiver;
  /** A control API call of the simulator (a contact acts); fails the test unless it answers 200. */
  contact<T = { id: string }>(path: string, body: Record<string, unknown>): Promise<T>;
}

export function connectedSuite(options: {
  session: { id: string; phone: string };
  env: Record<string, string>;
  /** Other sessions the suite creates, whose dispatcher workflows end with it. */
  moreSessions?: string[];
  runner?: StackOptions['runner'];
}): ConnectedSuite {
  let stack: Stack | undefined;
  let control: ControlApi | undefined;
  const receiver = new ClientReceiver();
  const ready = <T>(value: T | undefined, what: string): T => {
    if (!value) throw new Error(`${what} is not up: the suite's before hook failed`);
    return value;
  };

  before(async () => {
    await receiver.up();
    stack = await new Stack({
      proxies: 1,
      ...(options.runner ? { runner: options.runner } : {}),
      extraEnv: {
        TENANT_API_KEYS: `acme:${TENANT_KEY},other:${OTHER_KEY}`,
        CLIENT_WEBHOOK_POLL_MS: '100',
        ANTIBAN_IDLE_POLL_MS: '500',
        ...options.env,
      },
    }).start();
    const put = await stack.call('PUT', '/api/v1/webhooks', { url: receiver.url, secret: SECRET }, TENANT_KEY);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await connectedSession(stack, options.session.id, options.session.phone, TENANT_KEY);
    control = await startControlApi(stack.sim, { port: 0 });
  });
  after(async () => {
    await control?.close();
    if (stack) await terminateDispatchers(stack, [options.session.id, ...(options.moreSessions ?? [])]);
    await stack?.stop();
    await receiver.down().catch(() => undefined);
  });

  return {
    get stack() {
      return ready(stack, 'the stack');
    },
    get control() {
      return ready(control, 'the simulator control API');
    },
    receiver,
    async contact<T>(path: string, body: Record<string, unknown>): Promise<T> {
      const res = await fetch(`${ready(control, 'the simulator control API').url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const json = (await res.json()) as T;
      assert.equal(res.status, 200, `${path}: ${JSON.stringify(json)}`);
      return json;
    },
  };
}
