import { chownSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { containerNameFor } from '../../common/session.js';
import { proxyFingerprint } from '../../common/proxy-id.js';
import { proxyEndpoint } from '../../common/proxy-url.js';
import type { WorkerInfo, WorkerRunner, WorkerSpec } from './types.js';
import { safeSessionDir } from '../../common/auth-owner.js';
import { writeWorkerFence } from '../../common/worker-fence.js';

const LABEL_SESSION = 'wa.session';
const LABEL_MANAGED = 'wa.managed-by';
const LABEL_HOST = 'wa.host';
const LABEL_PROXY_HASH = 'wa.proxy-hash';
const LABEL_PROXY_ENDPOINT = 'wa.proxy-endpoint';
/** The worker generation the container was created for (its events carry it; a new generation needs a new one). */
const LABEL_GENERATION = 'wa.generation';
const MANAGED_BY = 'wa-orchestrator';
/** Where NODE_EXTRA_CA_CERTS (a host file) is mounted in a worker container. */
const CONTAINER_EXTRA_CA = '/etc/wa-extra-ca.pem';

/**
 * One container per session (SPEC §5): `wa_session_<id>`, labelled, its auth folder bind-mounted at
 * /app/sessions/<id>, restart policy `unless-stopped`, a memory limit, a read-only root filesystem.
 */
export class DockerRunner implements WorkerRunner {
  readonly kind = 'docker' as const;
  private readonly docker: Docker;

  constructor(
    private readonly opts: {
      image: string;
      network: string;
      memoryMb: number;
      /** Host folder holding every session's auth folder (absolute). */
      sessionsDir: string;
      /** uid:gid the image runs as; the auth folder is handed to it. */
      workerUid: number;
      workerGid: number;
      /** The orchestrator host that owns these containers (label), so two hosts on one daemon never mix. */
      hostId: string;
      socketPath?: string;
      stopGraceSeconds?: number;
    },
  ) {
    this.docker = new Docker({ socketPath: opts.socketPath ?? '/var/run/docker.sock' });
  }

  private container(sessionId: string) {
    return this.docker.getContainer(containerNameFor(sessionId));
  }

  private async inspectRaw(sessionId: string) {
    try {
      return await this.container(sessionId).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    }
  }

  async start(spec: WorkerSpec): Promise<WorkerInfo> {
    const hash = proxyFingerprint(spec.proxyUrl);
    const generation = spec.env.WORKER_GENERATION ?? '';
    const existing = await this.inspectRaw(spec.sessionId);
    if (existing) {
      const labels = existing.Config.Labels ?? {};
      if (
        labels[LABEL_PROXY_HASH] === hash &&
        (labels[LABEL_GENERATION] ?? '') === generation &&
        existing.Config.Image === this.opts.image
      ) {
        if (!existing.State.Running) await this.container(spec.sessionId).start();
        return (await this.inspect(spec.sessionId))!;
      }
      await this.stop(spec.sessionId, { remove: true });
    }

    // Re-validated here too: this path becomes a bind mount (a bad id must never mount another folder).
    const hostAuthDir = safeSessionDir(this.opts.sessionsDir, spec.sessionId);
    mkdirSync(hostAuthDir, { recursive: true, mode: 0o700 });
    chownSync(hostAuthDir, this.opts.workerUid, this.opts.workerGid);
    // The fence first: from here on a worker of an older generation can no longer write this folder's keys.
    if (generation !== '')
      writeWorkerFence(hostAuthDir, Number(generation), { uid: this.opts.workerUid, gid: this.opts.workerGid });
    const containerAuthDir = `/app/sessions/${spec.sessionId}`;
    const env: Record<string, string> = { ...spec.env, SESSIONS_DIR: '/app/sessions', AUTH_DIR: containerAuthDir };
    const binds = [`${hostAuthDir}:${containerAuthDir}:rw`];
    // Extra trusted roots (the simulator's media host in tests and the demo): the host's PEM file, mounted read-only.
    const extraCa = spec.env.NODE_EXTRA_CA_CERTS;
    if (extraCa && path.isAbsolute(extraCa) && existsSync(extraCa)) {
      binds.push(`${extraCa}:${CONTAINER_EXTRA_CA}:ro`);
      env.NODE_EXTRA_CA_CERTS = CONTAINER_EXTRA_CA;
    }
    try {
      const container = await this.docker.createContainer({
        name: containerNameFor(spec.sessionId),
        Image: this.opts.image,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: {
          [LABEL_SESSION]: spec.sessionId,
          [LABEL_MANAGED]: MANAGED_BY,
          [LABEL_HOST]: this.opts.hostId,
          [LABEL_PROXY_HASH]: hash,
          [LABEL_PROXY_ENDPOINT]: proxyEndpoint(spec.proxyUrl),
          [LABEL_GENERATION]: generation,
        },
        HostConfig: {
          Binds: binds,
          RestartPolicy: { Name: 'unless-stopped' },
          Memory: this.opts.memoryMb * 1024 * 1024,
          NetworkMode: this.opts.network,
          ReadonlyRootfs: true,
          Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
        },
        StopTimeout: this.opts.stopGraceSeconds ?? 10,
      });
      await container.start();
    } catch (err) {
      // 409: a concurrent start (e.g. an activity retried after an orchestrator crash) created it first.
      if ((err as { statusCode?: number }).statusCode !== 409) throw err;
    }
    return (await this.inspect(spec.sessionId))!;
  }

  async stop(sessionId: string, opts: { remove?: boolean } = {}): Promise<void> {
    const info = await this.inspectRaw(sessionId);
    if (!info) return;
    const container = this.container(sessionId);
    if (info.State.Running || info.State.Paused) {
      if (info.State.Paused) await container.unpause().catch(() => undefined);
      await container.stop({ t: this.opts.stopGraceSeconds ?? 10 }).catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 304 && err.statusCode !== 404) throw err;
      });
    }
    if (opts.remove) {
      await container.remove({ force: true }).catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404 && err.statusCode !== 409) throw err;
      });
    }
  }

  async restart(sessionId: string): Promise<WorkerInfo | null> {
    const info = await this.inspectRaw(sessionId);
    if (!info) return null;
    await this.container(sessionId).restart({ t: this.opts.stopGraceSeconds ?? 10 });
    return this.inspect(sessionId);
  }

  async inspect(sessionId: string): Promise<WorkerInfo | null> {
    const info = await this.inspectRaw(sessionId);
    if (!info) return null;
    return {
      sessionId,
      running: info.State.Running && !info.State.Paused,
      proxyEndpoint: info.Config.Labels?.[LABEL_PROXY_ENDPOINT] ?? null,
      proxyHash: info.Config.Labels?.[LABEL_PROXY_HASH] ?? null,
      containerId: info.Id,
      pid: info.State.Pid || undefined,
      startedAt: Date.parse(info.State.StartedAt) || undefined,
    };
  }

  async list(): Promise<WorkerInfo[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_MANAGED}=${MANAGED_BY}`, `${LABEL_HOST}=${this.opts.hostId}`] },
    });
    return containers.map((c) => ({
      sessionId: c.Labels[LABEL_SESSION] ?? '',
      running: c.State === 'running',
      proxyEndpoint: c.Labels[LABEL_PROXY_ENDPOINT] ?? null,
      proxyHash: c.Labels[LABEL_PROXY_HASH] ?? null,
      containerId: c.Id,
    }));
  }

  async close(): Promise<void> {}
}
