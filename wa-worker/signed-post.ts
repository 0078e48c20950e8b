/**
 * The worker's signed calls to the orchestrator/API (outbox, commands): POST JSON signed with the session's key,
 * bound to method and path with a fresh nonce, so a captured request cannot be replayed or redirected.
 */
import { openAsBlob } from 'node:fs';
import { signedRequestHeaders } from '../common/events.js';

/** A non-2xx answer (204 aside), with its status: callers tell refusals (4xx) from retryable failures. */
export class SignedHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The worker's generation, signed into every call, and what to do when the API says it was replaced. */
export interface Fencing {
  generation?: number;
  /** Called on 409 STALE_GENERATION: a newer worker replaced this one. */
  onStale?: () => void;
}

export class SignedClient {
  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
    /** what is called, for error messages */
    private readonly what: string,
    private readonly fencing: Fencing = {},
  ) {}

  /** `timeoutMs` replaces the client's for this call (a long-poll); `signal` cancels it. */
  async post(op: string, payload: object, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Response> {
    const body = JSON.stringify(payload);
    const url = `${this.baseUrl}/${op}`;
    const res = await fetch(url, {
      method: 'POST',
      headers: signedRequestHeaders(
        this.secret,
        'POST',
        new URL(url).pathname,
        body,
        undefined,
        undefined,
        this.fencing.generation,
      ),
      body,
      signal: opts.signal
        ? AbortSignal.any([AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs), opts.signal])
        : AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs),
    });
    return this.checked(op, res);
  }

  /**
   * POSTs a file (streamed from disk, application/octet-stream) described by `meta`: the signature covers the
   * description, carried base64url-encoded in `header`; the receiver checks the bytes against it.
   */
  async postFile(op: string, header: string, meta: object, file: string): Promise<Response> {
    const described = Buffer.from(JSON.stringify(meta)).toString('base64url');
    const url = `${this.baseUrl}/${op}`;
    const signed = signedRequestHeaders(
      this.secret,
      'POST',
      new URL(url).pathname,
      described,
      undefined,
      undefined,
      this.fencing.generation,
    );
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...signed, 'content-type': 'application/octet-stream', [header]: described },
      body: await openAsBlob(file),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    return this.checked(op, res);
  }

  private async checked(op: string, res: Response): Promise<Response> {
    if (res.status >= 300 && res.status !== 204) {
      const text = await res.text().catch(() => '');
      if (isStaleGeneration(res.status, text)) this.fencing.onStale?.();
      throw new SignedHttpError(res.status, `${this.what} ${op} answered ${res.status}: ${text.slice(0, 200)}`);
    }
    return res;
  }
}

/** The API's answer to a call of a replaced worker: 409 `{error: {code: 'STALE_GENERATION'}}`. */
export function isStaleGeneration(status: number, text: string): boolean {
  if (status !== 409) return false;
  try {
    return (JSON.parse(text) as { error?: { code?: unknown } }).error?.code === 'STALE_GENERATION';
  } catch {
    return false;
  }
}
