/**
 * What a session does, one job at a time from its main loop (session.ts): on a worker event, on a watchdog alarm,
 * and on a command from the API or the host failover workflow.
 */
import { patched } from '@temporalio/workflow';
import { WATCHED_STATUSES } from '../common/session-status.js';
import { bestEffortAlert } from './activity-options.js';
import {
  HOLDS_SLOT,
  TERMINAL,
  connectionLostError,
  type SessionCommand,
  type WorkerEvent,
} from './session-definitions.js';
import type { SessionLifecycle } from './session-lifecycle.js';
import { moveHost } from './session-move-host.js';

async function onProxyError(session: SessionLifecycle, event: WorkerEvent) {
  const { state, quick, timings } = session;
  if (!session.holdsProxy() || !HOLDS_SLOT.includes(state.status) || state.status === 'failing_over') return;
  if (session.fromOldWorker(event)) return;
  const probe = await quick.probeProxy({ ...session.proxyRef(), timeoutMs: timings.proxyProbeTimeoutMs });
  if (!probe.ok) return session.failover(`proxy ${state.proxyEndpoint} failed: ${probe.error}`);
  // The proxy answers: the worker retries through it. Fail over only if errors keep coming.
  state.proxyErrorsWhileAlive++;
  if (state.proxyErrorsWhileAlive >= timings.maxProxyErrorsWhileAlive) {
    return session.failover(
      `proxy ${state.proxyEndpoint} keeps failing (${state.proxyErrorsWhileAlive} errors in a row)`,
    );
  }
  if (state.status === 'connected') await session.transition('reconnecting', 'proxy error; worker retrying');
}

export async function onEvent(session: SessionLifecycle, event: WorkerEvent) {
  const { state, quick, mirror } = session;
  if (TERMINAL.includes(state.status)) return;
  switch (event.type) {
    case 'QR_CODE':
    case 'PAIRING_CODE':
      if (event.type === 'PAIRING_CODE' && session.fromOldWorker(event)) return;
      if (state.status === 'pending' || state.status === 'qr_ready' || state.status === 'reconnecting') {
        state.qrCount++;
        if (state.status !== 'qr_ready') await session.transition('qr_ready', null);
      }
      return;
    case 'CONNECTED': {
      if (!session.holdsProxy() || !HOLDS_SLOT.includes(state.status) || session.fromOldWorker(event)) return;
      const phone = String(event.data.phoneNumber);
      const jid = String(event.data.jid);
      const wasConnectedBefore = state.connectedAt !== null;
      // Back after a reported loss, the bridge having written it: the same phone, so no binding to check.
      const mirrored =
        session.mirroredOnTop(event) &&
        wasConnectedBefore &&
        state.status === 'reconnecting' &&
        phone === state.phone &&
        patched('bridge-mirrors-reconnects');
      if (mirrored) state.mirrorSeq = event.mirroredFrom! + 1;
      else {
        const { conflictWith, mirrorSeq } = await mirror.sessionConnected({
          sessionId: state.sessionId,
          phone,
          jid,
          ...session.proxyRef(),
          previousPhone: state.phone,
        });
        if (typeof mirrorSeq === 'number') state.mirrorSeq = mirrorSeq;
        if (conflictWith) {
          await session.park('failed', `phone ${phone} is already bound to session ${conflictWith}`, 'session_failed');
          return;
        }
      }
      state.phone = phone;
      state.jid = jid;
      state.status = 'connected';
      state.connectedAt = Date.now();
      state.lastError = null;
      state.consecutiveWatchdogRestarts = 0;
      state.proxyErrorsWhileAlive = 0;
      if (!wasConnectedBefore) {
        await bestEffortAlert({
          kind: 'session_connected',
          text: `session ${state.sessionId} connected as +${phone} via ${state.proxyEndpoint}`,
        });
      }
      return;
    }
    case 'PAIRING_FAILED': {
      // The code expired or was refused: nothing was linked. Give back the proxy slot and the phone (a new
      // provision or another session may take it); the session waits for a restart (a QR, or a new code).
      if (session.fromOldWorker(event) || !HOLDS_SLOT.includes(state.status) || state.status === 'failing_over') return;
      const expired = event.data.reason === 'expired';
      await quick.pairingFailed({ sessionId: state.sessionId, phone: state.phone });
      state.phone = null;
      state.pairingPhone = null;
      return session.park(
        expired ? 'qr_expired' : 'failed',
        expired
          ? 'pairing code expired before it was entered on the phone'
          : 'pairing code refused by WhatsApp (wrong code entered on the phone)',
        null,
      );
    }
    case 'PROXY_ERROR':
      return onProxyError(session, event);
    case 'AUTH_FAILURE':
      return session.logout(`logged out: ${String(event.data.reason ?? 'device removed')}`);
    case 'AUTH_STATE_INVALID':
      // The files are kept for an operator (restore a backup or remove the session): park, never restart.
      return session.park(
        'failed',
        `AUTH_STATE_INVALID: ${String(event.data.reason ?? 'unusable auth folder')}`,
        'session_failed',
      );
    case 'CLIENT_OUTDATED':
      // A restart would be refused again: park with one alert until the worker image (WA_VERSION) is updated.
      return session.park(
        'failed',
        `CLIENT_OUTDATED: WhatsApp refused version ${String(event.data.version ?? '?')} (405)`,
        'session_failed',
      );
    case 'DISCONNECTED': {
      const code = typeof event.data.code === 'number' ? event.data.code : null;
      // The worker reports one proxy failure as PROXY_ERROR + DISCONNECTED{isProxyError}: count it once.
      if (event.data.isProxyError === true)
        return patched('proxy-error-counted-once') ? undefined : onProxyError(session, event);
      if (session.fromOldWorker(event)) return;
      // Every QR expired unscanned: the worker gives up; end in a clear state, give back slot and worker.
      if (
        /^qr_timeout/.test(String(event.data.reason ?? '')) &&
        HOLDS_SLOT.includes(state.status) &&
        state.status !== 'failing_over' &&
        patched('qr-expired')
      ) {
        state.qrCount = 0;
        return session.park('qr_expired', 'QR codes expired without a scan: restart the session for new QRs', null);
      }
      if (code === 401) return session.logout('logged out (401)');
      if (code === 440) return session.park('failed', 'replaced by another client (440)', 'session_failed');
      // WhatsApp's codes: 406 banned, 402 banned for a while (the reason says until when), 403 account locked
      if (code === 406) return session.park('failed', 'number banned by WhatsApp (406)', 'session_failed');
      if (code === 402)
        return session.park(
          'failed',
          `number banned by WhatsApp for a while (402): ${String(event.data.reason ?? '')}`,
          'session_failed',
        );
      if (code === 403)
        return session.park('failed', 'account locked by WhatsApp (403): open WhatsApp on the phone', 'session_failed');
      if (HOLDS_SLOT.includes(state.status) && state.status !== 'failing_over') {
        const lastError = connectionLostError(event.data);
        // The bridge wrote connected → reconnecting already (waitedOutLoss): only the workflow's own state changes.
        if (state.status === 'connected' && session.mirroredOnTop(event) && patched('bridge-mirrors-reconnects')) {
          state.status = 'reconnecting';
          state.lastError = lastError;
          state.mirrorSeq = event.mirroredFrom! + 1;
          return;
        }
        await session.transition('reconnecting', lastError);
      }
      return;
    }
  }
}

export async function onAlarm(session: SessionLifecycle, at?: number) {
  const { state, timings } = session;
  if (!WATCHED_STATUSES.includes(state.status)) return;
  if (state.status !== 'connected' && state.status !== 'unhealthy') {
    // Raised before the current worker had a full ping timeout (e.g. during provision): not about this worker.
    if (at !== undefined && at < state.workerStartedAt + timings.pingTimeoutMs) return;
    // A worker hung before or between connections (pending, QR shown, reconnecting): restart it as it is.
    state.watchdogRestarts++;
    state.consecutiveWatchdogRestarts++;
    if (state.consecutiveWatchdogRestarts > timings.maxWatchdogRestarts) {
      await session.park(
        'failed',
        `worker hung (${state.status}) after ${timings.maxWatchdogRestarts} restarts`,
        'session_failed',
      );
      return;
    }
    await session.save({ lastError: `no ping while ${state.status}: restarting the worker` }, 'watchdogRestarts');
    await session.restartWorker();
    return;
  }
  state.watchdogRestarts++;
  state.consecutiveWatchdogRestarts++;
  if (state.consecutiveWatchdogRestarts > timings.maxWatchdogRestarts) {
    await session.park(
      'failed',
      `no ping for ${timings.pingTimeoutMs} ms after ${timings.maxWatchdogRestarts} restarts`,
      'session_failed',
    );
    return;
  }
  await session.transition('unhealthy', 'no ping: restarting the worker', 'watchdogRestarts');
  await bestEffortAlert({
    kind: 'session_unhealthy',
    text: `session ${state.sessionId}: no ping for ${timings.pingTimeoutMs} ms, restarting its worker`,
    dedupeKey: `session_unhealthy:${state.sessionId}`,
  });
  await session.restartWorker();
}

export async function onCommand(session: SessionLifecycle, command: SessionCommand): Promise<unknown> {
  const { state, quick, timings } = session;
  switch (command.kind) {
    case 'restart': {
      state.restarts++;
      if (session.holdsProxy() && HOLDS_SLOT.includes(state.status)) {
        await session.restartWorker();
        await session.transition('reconnecting', state.lastError, 'restarts');
      } else {
        // failed / stopped: take a slot again (the sticky proxy first) and start over.
        await session.reserve();
        await session.startWorker();
        await session.transition('pending', null, 'restarts');
        state.consecutiveWatchdogRestarts = 0;
      }
      return { status: state.status };
    }
    case 'failover':
      // Probe first: a manual failover moves the session, but marks BAD only a proxy that is really dead.
      if (patched('manual-failover-probes')) {
        const probe = await quick.probeProxy({ ...session.proxyRef(), timeoutMs: timings.proxyProbeTimeoutMs });
        await session.failover(`manual failover: ${command.reason}`, !probe.ok);
      } else await session.failover(`manual failover: ${command.reason}`);
      return { proxyEndpoint: state.proxyEndpoint };
    case 'logout':
      await session.logout('logged out by the operator');
      return { status: state.status };
    case 'pairingCode': {
      const { conflictWith } = await quick.claimPairingPhone({
        sessionId: state.sessionId,
        phone: command.phone,
        previousPhone: state.phone,
      });
      if (conflictWith) return { status: state.status, conflictWith };
      state.phone = command.phone;
      state.pairingPhone = command.phone;
      await session.restartWorker();
      await session.transition('pending', null);
      return { status: state.status };
    }
    case 'moveHost':
      return moveHost(session, command.request);
    case 'delete':
      await session.workers().stopWorker({ sessionId: state.sessionId, remove: true });
      await quick.releaseProxy(state.sessionId);
      if (!command.keepAuth) await session.workers().deleteAuthFiles(state.sessionId);
      await quick.finishSession({
        sessionId: state.sessionId,
        tenant: state.tenant,
        phone: state.phone,
        status: 'deleted',
        purge: true,
        // The kept auth folder is a device WhatsApp knows with this profile: a re-provision presents it again.
        ...(command.keepAuth ? { keepDeviceProfile: true } : {}),
      });
      state.status = 'deleted';
      return { status: state.status };
  }
}
