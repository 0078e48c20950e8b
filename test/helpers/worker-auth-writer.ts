/**
 * Child process for the auth-store crash test: hammers the crash-safe auth store (creds + many signal keys) as fast
 * as it can until it is killed. Prints `ready` after the first complete round.
 * Usage: node --import tsx test/helpers/worker-auth-writer.ts <folder>
 */
import { randomBytes } from 'node:crypto';
import { useCrashSafeAuthState } from '../../wa-worker/auth-store.js';

const folder = process.argv[2];
if (!folder) throw new Error('usage: worker-auth-writer.ts <folder>');
const auth = await useCrashSafeAuthState(folder);
const creds = auth.state.creds as unknown as Record<string, unknown>;
let round = 0;
for (;;) {
  round++;
  // A large, changing creds.json (~200 KB) so a write takes long enough to be interrupted.
  creds.nextPreKeyId = round;
  creds.processedHistoryMessages = Array.from({ length: 400 }, (_, i) => ({
    key: { id: `${round}-${i}-${randomBytes(96).toString('hex')}` },
    messageTimestamp: round,
  }));
  const keys: Record<string, { public: Buffer; private: Buffer }> = {};
  for (let i = 0; i < 30; i++)
    keys[String((round * 30 + i) % 500)] = { public: randomBytes(32), private: randomBytes(32) };
  await Promise.all([auth.saveCreds(), auth.state.keys.set({ 'pre-key': keys })]);
  if (round === 1) process.stdout.write('ready\n');
}
