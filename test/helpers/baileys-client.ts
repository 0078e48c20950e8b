import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import makeWASocket, {
  Browsers,
  useMultiFileAuthState,
  type BaileysEventMap,
  type ConnectionState,
  type SocketConfig,
  type WAMessage,
  type WAMessageUpdate,
  WA_CERT_DETAILS,
} from '@whiskeysockets/baileys';
import pino from 'pino';
import { disconnectStatusCode } from '../../common/baileys-errors.js';
import { SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX } from '../../simulator/index.js';

export type WASocket = ReturnType<typeof makeWASocket>;

export interface ClientOptions {
  url: string;
  authDir: string;
  agent?: SocketConfig['agent'];
  qrTimeout?: number;
  keepAliveIntervalMs?: number;
  connectTimeoutMs?: number;
  defaultQueryTimeoutMs?: number;
}

export interface CloseInfo {
  statusCode: number | undefined;
  error: Error | undefined;
}

/**
 * A real, unmodified Baileys socket with a temp-dir auth state, recording every event it emits so a test can
 * wait for something that may already have happened.
 */
export class TestClient {
  readonly updates: Array<Partial<ConnectionState>> = [];
  readonly upserts: WAMessage[] = [];
  readonly messageUpdates: WAMessageUpdate[] = [];
  private readonly waiters = new Set<() => void>();
  private ended = false;

  private constructor(readonly sock: WASocket) {
    sock.ev.on('connection.update', (update) => this.record(() => this.updates.push(update)));
    sock.ev.on('messages.upsert', ({ messages }) => this.record(() => this.upserts.push(...messages)));
    sock.ev.on('messages.update', (updates) => this.record(() => this.messageUpdates.push(...updates)));
  }

  static async connect(opts: ClientOptions): Promise<TestClient> {
    // Baileys 7 verifies the Noise certificate chain: trust the simulator's published root (test clients only).
    WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX, 'hex');
    const { state, saveCreds } = await useMultiFileAuthState(opts.authDir);
    const sock = makeWASocket({
      waWebSocketUrl: opts.url,
      agent: opts.agent,
      auth: state,
      logger: pino({ level: process.env.BAILEYS_LOG_LEVEL ?? 'silent' }),
      browser: Browsers.ubuntu('Chrome'),
      qrTimeout: opts.qrTimeout,
      keepAliveIntervalMs: opts.keepAliveIntervalMs ?? 2000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
      defaultQueryTimeoutMs: opts.defaultQueryTimeoutMs ?? 5000,
      markOnlineOnConnect: false,
      fireInitQueries: true,
    });
    const client = new TestClient(sock);
    sock.ev.on('creds.update', saveCreds);
    return client;
  }

  /** Resolves with the first (past or future) event value matching `predicate`. */
  waitFor<T>(list: T[], predicate: (item: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = list.find(predicate);
        if (found === undefined) return false;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }

  async waitForQr(timeoutMs = 5000): Promise<string> {
    const update = await this.waitFor(this.updates, (u) => !!u.qr, timeoutMs, 'a QR code');
    return update.qr as string;
  }

  async waitForOpen(timeoutMs = 8000): Promise<void> {
    await this.waitFor(this.updates, (u) => u.connection === 'open', timeoutMs, 'connection open');
  }

  async waitForClose(timeoutMs = 8000): Promise<CloseInfo> {
    const update = await this.waitFor(this.updates, (u) => u.connection === 'close', timeoutMs, 'connection close');
    const error = update.lastDisconnect?.error;
    return { statusCode: disconnectStatusCode(error), error };
  }

  /**
   * Waits until the client knows that its message `id` reached `status` (or a later one). Baileys 6.7.24 usually
   * reports a receipt as `messages.update`, but when the receipt arrives while its own `messages.upsert` for that
   * message is still buffered, the status is merged into that upsert instead; both are real client behaviour.
   */
  async waitForStatus(id: string, status: number, timeoutMs = 5000): Promise<'update' | 'upsert'> {
    const reached = (value: number | null | undefined): boolean => typeof value === 'number' && value >= status;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const how = this.messageUpdates.some((u) => u.key.id === id && reached(u.update.status))
          ? 'update'
          : this.upserts.some((m) => m.key.id === id && reached(m.status))
            ? 'upsert'
            : null;
        if (!how) return false;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(how);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for status ${status} of ${id}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }

  get qrCount(): number {
    return this.updates.filter((u) => !!u.qr).length;
  }

  /** Closes the socket without logging out; safe to call twice. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const waiter of this.waiters) this.waiters.delete(waiter);
    void this.sock.end(undefined).catch(() => undefined);
  }

  private record(push: () => void): void {
    push();
    for (const check of [...this.waiters]) check();
  }
}

export type { BaileysEventMap };

export async function makeAuthDir(prefix = 'wa-sim-test-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  // retries: Baileys may still be saving creds right after `end()`
  return { dir, remove: () => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
