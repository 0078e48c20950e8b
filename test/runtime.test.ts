/**
 * The supported runtime is Node 24 LTS from data/tools/node (scripts/services.sh), not whatever node the machine
 * has: the test runner, every script (through scripts/node-env.sh) and, through process.execPath, every child.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE_BIN = path.join(process.env.WA_DATA_DIR ?? path.join(ROOT, 'data'), 'tools', 'node', 'bin');

describe('runtime: Node 24 LTS', () => {
  test('the test runner runs on Node 24 from data/tools/node', () => {
    assert.equal(process.versions.node.split('.')[0], '24', `running on ${process.version} (${process.execPath})`);
    assert.equal(fs.realpathSync(process.execPath), fs.realpathSync(path.join(NODE_BIN, 'node')));
  });

  test('scripts/node-env.sh puts that Node, npm and npx first, ahead of the machine node', () => {
    const out = execFileSync(
      'bash',
      ['-c', '. scripts/node-env.sh; command -v node; node --version; npm --version; npx --version'],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ROOT, PATH: '/usr/local/bin:/usr/bin:/bin' } },
    );
    const [nodePath, nodeVersion, npmVersion, npxVersion] = out.trim().split('\n');
    assert.equal(nodePath, path.join(NODE_BIN, 'node'));
    assert.match(nodeVersion ?? '', /^v24\./);
    assert.match(npmVersion ?? '', /^\d+\.\d+\.\d+$/);
    assert.equal(npxVersion, npmVersion);
  });

  test('package.json: engines >=22, @types/node 24, every install script reviewed', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
      allowScripts?: Record<string, boolean>;
    };
    assert.equal(pkg.engines.node, '>=22');
    assert.match(pkg.devDependencies['@types/node'] ?? '', /^24\./);
    // npm 11 lists packages whose install scripts are not covered by allowScripts; the list must be empty.
    const pending = execFileSync('npm', ['approve-scripts', '--allow-scripts-pending', '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH ?? ''}` },
    });
    assert.deepEqual((JSON.parse(pending) as { allowScripts: unknown[] }).allowScripts, []);
  });

  test('native addons load on this Node (N-API prebuilds and node-gyp builds)', async () => {
    await import('@temporalio/core-bridge');
    await import('@swc/core');
    const require = (await import('node:module')).createRequire(import.meta.url);
    // Built by node-gyp at install time, so they must match this Node's ABI.
    require('cpu-features');
    require(path.join(ROOT, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node'));
  });
});
