/**
 * A worker container reaches only what it needs (issue 14 item 5), with real Docker and the real worker image:
 * the networks are laid out as docker-compose.yml lays them out (test-named copies), a worker container is started
 * by the orchestrator's own DockerRunner on the network the compose file gives the orchestrator (`DOCKER_NETWORK`),
 * and from inside it the API answers while the services network (Redis, Temporal, PostgreSQL) cannot be reached,
 * neither by name nor by address.
 *
 * Stand-ins: no registry serves the Redis/API images here, so two containers of the worker image listen on the
 * Redis and API ports under those names. What is under test is the network path, which is Docker's own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { DockerRunner } from '../../activities/runner/docker-runner.js';
import { containerNameFor } from '../../common/session.js';
import { ROOT, waitFor } from '../helpers/stack.js';
import { buildWorkerImage, containerState, docker } from '../helpers/worker-docker.js';

interface ComposeService {
  networks?: string[];
  environment?: Record<string, string>;
}

/** docker-compose.yml with its anchors and merge keys resolved. */
function compose(): { services: Record<string, ComposeService>; networks: Record<string, { name?: string }> } {
  return parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
}

/** From inside `container`: does a TCP connection to host:port open within 3 s? */
async function reaches(container: string, host: string, port: number): Promise<boolean> {
  const probe = `const s=require('net').connect(${port},${JSON.stringify(host)});s.setTimeout(3000);s.on('connect',()=>{console.log('open');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
  return (await docker('exec', container, 'node', '-e', probe)) === 'open';
}

describe('worker containers are on their own network (Docker runner)', () => {
  const suffix = `t${process.pid}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-worker-net-'));
  const sessionId = `net${process.pid}`;
  const layout = compose();
  const workersNet = layout.services.orchestrator!.environment!.DOCKER_NETWORK!;
  const servicesNet = 'whatsapp-network';
  const net = (name: string) => `${name}-${suffix}`;
  const redis = `wa-redis-standin-${suffix}`;
  const api = `wa-api-standin-${suffix}`;
  /** Every network the compose file declares, plus the workers' one. */
  const allNets = () => new Set([...Object.keys(layout.networks), servicesNet, workersNet]);
  let image = '';
  let runner: DockerRunner;

  const listener = (port: number) => `require('net').createServer((s)=>s.end()).listen(${port})`;

  before(async () => {
    image = buildWorkerImage().image;
    for (const n of allNets()) await docker('network', 'create', '--driver', 'bridge', net(n));
    // Each stand-in joins the networks its service joins in the compose file.
    const standIn = async (name: string, service: string, port: number) => {
      const [first, ...rest] = layout.services[service]!.networks!;
      await docker(
        'run',
        '-d',
        '--name',
        name,
        '--network',
        net(first!),
        '--network-alias',
        service,
        '--entrypoint',
        'node',
        image,
        '-e',
        listener(port),
      );
      for (const n of rest) await docker('network', 'connect', '--alias', service, net(n), name);
    };
    await standIn(redis, 'redis', 6379);
    await standIn(api, 'api', 3000);
    runner = new DockerRunner({
      image,
      network: net(workersNet),
      memoryMb: 256,
      sessionsDir: path.join(dir, 'sessions'),
      workerUid: 1000,
      workerGid: 1000,
      hostId: `net-test-${suffix}`,
      stopGraceSeconds: 1,
    });
  });

  after(async () => {
    await runner?.stop(sessionId, { remove: true }).catch(() => undefined);
    for (const c of [redis, api]) await docker('rm', '-f', c).catch(() => undefined);
    for (const n of allNets()) await docker('network', 'rm', net(n)).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the compose file puts workers on a network that only the API shares with them', () => {
    assert.notEqual(workersNet, servicesNet, 'DOCKER_NETWORK is not the services network');
    assert.ok(layout.networks[workersNet], `network ${workersNet} is declared`);
    assert.ok(layout.services.api!.networks!.includes(workersNet), 'the API is on the workers network');
    for (const s of ['redis', 'postgres', 'temporal', 'temporal-ui'])
      assert.ok(!layout.services[s]!.networks!.includes(workersNet), `${s} is not on the workers network`);
    assert.match(layout.services.orchestrator!.environment!.WEBHOOK_URL!, /^http:\/\/api:/, 'workers call the API');
  });

  it('from inside a worker container: the API answers, Redis is unreachable by name and by address', async () => {
    const info = await runner.start({
      sessionId,
      proxyUrl: 'socks5h://user:pw-net@127.0.0.1:1',
      env: {
        SESSION_ID: sessionId,
        PROXY_URL: 'socks5h://user:pw-net@127.0.0.1:1',
        WEBHOOK_URL: 'http://api:3000/api/webhook',
        WEBHOOK_SECRET: 'net-test-secret-0123456789abcdef',
        OUTBOX_URL: `http://api:3000/api/worker/sessions/${sessionId}/outbox`,
        LOG_LEVEL: 'silent',
      },
    });
    assert.ok(info.running, 'the worker container runs');
    const name = containerNameFor(sessionId);
    await waitFor('the worker container to run', async () => (await containerState(name)).Running, 20_000);
    const redisAddress = (
      await docker(
        'inspect',
        '--format',
        `{{(index .NetworkSettings.Networks "${net(servicesNet)}").IPAddress}}`,
        redis,
      )
    ).trim();
    assert.match(redisAddress, /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(await reaches(name, 'api', 3000), true, 'the API (webhooks, outbox) is reachable');
    assert.equal(await reaches(name, 'redis', 6379), false, 'Redis is not reachable by name');
    assert.equal(await reaches(name, redisAddress, 6379), false, 'Redis is not reachable by address');
    // The probe itself works across a shared network: the API container reaches the same Redis.
    assert.equal(await reaches(api, 'redis', 6379), true, 'the API reaches Redis');
  });
});
