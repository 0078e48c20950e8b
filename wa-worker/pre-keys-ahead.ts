/**
 * A new device's first login uploads 812 one-time pre-keys (Baileys 7); generating and durably storing them costs
 * ~0.3 CPU-seconds, most of it in the kernel (812 fsync'd files). Done while the QR (or pairing code) waits for the
 * phone, the scan → open path only uploads them. But that CPU is taken only when the host has it to spare: during a
 * mass provisioning every worker boot needs it, and QRs that wait longer expire unscanned. So the job waits while the
 * host's CPU pressure (PSI "some avg10") is above PREKEYS_AHEAD_MAX_CPU_PRESSURE — 50 % by default: measured 20–30 %
 * while sessions are provisioned one after another, 80–85 % during a ramp of 6 at a time on 2 cores — checking again
 * every few seconds, and is dropped when the scan comes first (the login then makes the keys, as without this).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** "some avg10" of a PSI file (`/proc/pressure/cpu`): the share of the last 10 s some task waited for a CPU, in %. */
export function parseCpuPressure(text: string): number | null {
  const m = /^some avg10=(\d+(?:\.\d+)?)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** The host's CPU pressure in % (PSI), else its 1-minute load per core in % where PSI is not available. */
export function hostCpuPressure(): number {
  try {
    const psi = parseCpuPressure(readFileSync('/proc/pressure/cpu', 'utf8'));
    if (psi !== null) return psi;
  } catch {
    /* no PSI in this kernel */
  }
  return (os.loadavg()[0]! / os.availableParallelism()) * 100;
}

export interface PreKeysAheadOptions {
  /** Generates and stores the keys; how many (0: nothing to do). */
  store: () => Promise<number>;
  /** Still waiting for the phone (not scanned, not stopped). */
  waiting: () => boolean;
  /** Resolves when the QR event reached the API (the job must not delay it). */
  reported: () => Promise<unknown>;
  /** Highest host CPU pressure (%) at which the job runs; 100: always. */
  maxCpuPressure: number;
  /** Pause between two pressure checks (a random part is added, so that waiting workers do not start together). */
  retryMs: number;
  pressure?: () => number;
  logger: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export class PreKeysAhead {
  private job: Promise<void> | undefined;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: PreKeysAheadOptions) {}

  /** A QR or code is shown: store the keys once it reached the API and the CPU is spare. Once per worker. */
  schedule(): void {
    if (this.job || this.pending) return;
    this.pending = true;
    void this.o.reported().then(() => this.attempt());
  }

  /** The storing in progress (a login must wait for it), or undefined. */
  get running(): Promise<void> | undefined {
    return this.job;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = false;
  }

  private attempt(): void {
    this.timer = undefined;
    if (!this.pending) return;
    if (!this.o.waiting()) {
      this.pending = false;
      return;
    }
    const pressure = (this.o.pressure ?? hostCpuPressure)();
    if (pressure > this.o.maxCpuPressure) {
      this.timer = setTimeout(() => this.attempt(), this.o.retryMs + Math.random() * this.o.retryMs);
      this.timer.unref();
      return;
    }
    this.pending = false;
    const started = Date.now();
    this.job = this.o.store().then(
      (count) => {
        if (count > 0) this.o.logger.info({ count, ms: Date.now() - started, pressure }, 'first login pre-keys stored');
      },
      (err: unknown) =>
        this.o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'pre-keys not stored ahead'),
    );
  }
}
