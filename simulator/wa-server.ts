import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { EventEmitter } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  aesDecryptCTR,
  aesDecryptGCM,
  aesEncryptCTR,
  Curve,
  decodeBinaryNode,
  derivePairingCodeKey,
  encodeBinaryNode,
  getBinaryNodeChild,
  getBinaryNodeChildBuffer,
  getBinaryNodeChildren,
  hkdf,
  hmacSign,
  jidDecode,
  NOISE_WA_HEADER,
  proto,
  type BinaryNode,
  type KeyPair,
} from '@whiskeysockets/baileys';
import pino from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  companionBundleNode,
  FakeContact,
  messageDetails,
  messageText,
  type CompanionBundle,
  type MessageDetails,
} from './contacts.js';
import { MediaServer, type InboundMediaInput, type RecordedMedia, type SentMedia } from './media.js';
import { encodeFrame, FrameReader, ServerNoise } from './noise.js';

export const FAULT_KINDS = [
  'unlink',
  'replaced',
  'restart',
  'close',
  'stop-pings',
  'resume-pings',
  'ban',
  'temp-ban',
  'lock',
  'unban',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface AntiSpamOptions {
  /** more messages than this from one phone within the rolling rate window → ban (default 20) */
  maxPerMinute?: number;
  /** the rate window of maxPerMinute (default one minute; tests shrink it) */
  rateWindowMs?: number;
  /** more distinct new recipients than this within an hour from a young phone → ban (default 10) */
  maxNewContactsPerHourYoung?: number;
  /** a phone counts as young for this long after it was first linked (default 7 days) */
  youngForMs?: number;
}

export interface SimulatorOptions {
  host?: string;
  port?: number;
  /** refs per pair-device, i.e. how many QR codes Baileys shows before closing with 408 (default 6) */
  qrRefs?: number;
  /** how long a pairing code can be typed after the companion asked for it (default 180 s) */
  pairingCodeTtlMs?: number;
  /** automatic receipts after a message from a session (default 'delivery') */
  receipts?: 'delivery' | 'read' | 'none';
  /** how long the recipient's phone takes to send the automatic receipts (default 100 ms, after a 50 ms server notification) */
  receiptDelayMs?: number;
  antiSpam?: AntiSpamOptions | null;
  /** clients whose `appVersion` is below this are refused with `<failure reason="405">` (client_too_old) */
  minClientVersion?: ClientVersion | null;
  /** the current web client version served at `/sw.js` (default: minClientVersion) */
  webClientVersion?: ClientVersion | null;
  /** how long the `temp-ban` fault bans a number (default 24 h) */
  tempBanMs?: number;
  /** WhatsApp's privacy-token gate for young numbers (error acks 463 / 479); off when absent */
  coldOutreach?: ColdOutreachRule | null;
  logger?: pino.Logger;
}

/**
 * A young number's first 1:1 message to a contact, without a valid `tctoken` issued by that contact to that number,
 * is refused by the server with `<ack class="message" error="463">` (to a group: 479); nothing is delivered, no
 * receipt follows. Contacts issue tokens as WhatsApp's clients do: writing to the number (or `grantPrivacyToken`)
 * makes the server push a `privacy_token` notification the session stores and attaches to later sends.
 */
export interface ColdOutreachRule {
  /** a phone counts as young for this long after it was first linked (default 7 days) */
  youngForMs?: number;
}

/** WhatsApp Web version as the client announces it: [primary, secondary, tertiary]. */
export type ClientVersion = [number, number, number];

function versionBelow(v: ClientVersion, min: ClientVersion): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! < min[i]!;
  return false;
}

export interface RecordedMessageBase {
  id: string;
  phone: string;
  to: string;
  text: string;
  at: number;
  sourceAddress: string;
  /** media the message carried, decrypted from the upload and checked (text is then '') */
  media?: RecordedMedia;
}

/** A sent message as its recipient sees it: a reaction, delete, edit, reply, location or contact (see MessageDetails). */
export type RecordedMessage = RecordedMessageBase & MessageDetails;

/** A contact's reaction (emoji; '' removes it), edit (new text) or delete for everyone of message `messageId`. */
export interface InboundActionInput {
  kind: 'reaction' | 'edit' | 'revoke';
  messageId: string;
  emoji?: string;
  text?: string;
}

/** A chat state a session sent to one contact (`<chatstate>`): typing indicators. */
export interface RecordedPresence {
  /** the session's phone */
  phone: string;
  /** the contact's user part (phone number or LID) */
  contact: string;
  state: 'composing' | 'recording' | 'paused';
  at: number;
}

/** A read receipt a session sent for messages it received. */
export interface RecordedReadReceipt {
  phone: string;
  /** the chat's user part (the contact who wrote; for a group, the group's id) */
  contact: string;
  /** a group's read receipt: the member whose messages were read (user part) */
  participant?: string;
  messageIds: string[];
  type: 'read' | 'read-self';
  at: number;
}

/** A contact lookup (usync `<contact>` query) a session made: the numbers it asked about. */
export interface RecordedLookup {
  phone: string;
  numbers: string[];
  at: number;
}

/** What one member's device got of a group message, decrypted as that device decrypts it. */
export interface GroupReceipt {
  /** the member's phone number */
  participant: string;
  /** false: the member's device could not decrypt it (no sender key) */
  decrypted: boolean;
  text: string;
  /** media the message carried, fetched and checked (text is then the caption or '') */
  media?: RecordedMedia;
  /** a reaction, delete, edit, reply, location or contact: what the member's phone shows */
  details?: MessageDetails;
}

/** A message in a group: from a session (decrypted per member) or from a simulated member (`inbound`). */
export interface GroupMessage {
  id: string;
  /** the sender's phone number */
  from: string;
  direction: 'outbound' | 'inbound';
  text: string;
  at: number;
  /** outbound: what each other member received */
  received: GroupReceipt[];
  /** inbound: a reaction, delete or edit the member sent */
  details?: MessageDetails;
}

export interface GroupSummary {
  /** `<id>@g.us` */
  jid: string;
  subject: string;
  /** how WhatsApp addresses the members: by phone number, or by LID (the phone number alongside) */
  addressingMode: 'pn' | 'lid';
  /** the creator's phone number */
  creator: string;
  creation: number;
  participants: Array<{ phone: string; admin: 'superadmin' | 'admin' | null }>;
  /** members who left or were removed, newest last */
  formerParticipants: string[];
  messages: GroupMessage[];
}

interface GroupState {
  /** the id part of the jid */
  id: string;
  jid: string;
  subject: string;
  addressingMode: 'pn' | 'lid';
  creator: string;
  /** unix seconds */
  creation: number;
  subjectTime: number;
  /** phone number → admin type, in joining order */
  participants: Map<string, 'superadmin' | 'admin' | null>;
  formerParticipants: string[];
  messages: GroupMessage[];
  /** `<member jid>|<companion device jid>`: a member's sender key was distributed to that companion */
  senderKeysSent: Set<string>;
}

export interface ConnectionRecord {
  phone: string | null;
  address: string;
  at: number;
  kind: 'registration' | 'login' | 'rejected';
  /** when the socket closed (absent while open) */
  closedAt?: number;
  /**
   * The device identity the client presented: its user-agent platform on every connection; at registration (QR or
   * code) also the companion's DeviceProps `os` and platform type (the browser), and with a pairing code the
   * `companion_platform_display` ("Chrome (Ubuntu)"). Baileys' login payload carries no browser triple.
   */
  presented?: { platform: string; os: string | null; browser: string | null; display: string | null };
}

export interface PhoneSummary {
  phone: string;
  linked: boolean;
  banned: boolean;
  online: boolean;
  messagesSent: number;
  /** messages the server refused with error 463 (1:1, no valid privacy token) */
  rejected463: number;
  /** privacy tokens contacts issued to this number (each pushed as a `privacy_token` notification) */
  privacyTokensIssued: number;
  /** cold 1:1 messages accepted because they carried a valid token */
  acceptedWithToken: number;
  /** cold 1:1 messages refused with 463 although they carried a token (forged, or issued by/for someone else) */
  rejectedInvalidToken: number;
  /** messages the server refused with error 479 (group) */
  rejected479: number;
  /** recipient copies a contact could not decrypt (each answered with a retry receipt, up to 3 per message) */
  decryptFailures: number;
  retryReceiptsSent: number;
  /** re-sent copies (after a retry receipt) the recipient decrypted */
  resentDecrypted: number;
  /** messages still waiting for a copy the recipient can decrypt */
  undecryptable: number;
}

/** A phone's account and linked devices as JSON (binary values base64), see `exportPhone`. */
export interface ExportedPhone {
  phone: string;
  account: { public: string; private: string };
  nextDeviceId: number;
  firstLinkedAt: number | null;
  devices: Array<{
    deviceId: number;
    jid: string;
    lid: string;
    noiseKey: string;
    identity: string;
    appStateKeyShared: boolean;
    /** absent in exports of older simulators: then a device that got its key share had logged in before */
    historySynced?: boolean;
    bundle: {
      registrationId: number;
      identity: string;
      signedPreKey: { id: number; value: string; signature: string };
      preKeys: Array<{ id: number; value: string }>;
    } | null;
  }>;
}

/** A companion device (a Baileys session) linked to a phone. */
interface LinkedDevice {
  phone: string;
  deviceId: number;
  jid: string;
  lid: string;
  noiseKey: string;
  identity: Buffer;
  /** set once the device uploaded its pre-keys; needed to encrypt inbound messages to it */
  bundle: CompanionBundle | null;
  appStateKeyShared: boolean;
  /** the device got its history sync (first login only) */
  historySynced: boolean;
}

interface PhoneState {
  phone: string;
  /** the primary phone's ADV account key pair, signs the device identity at pairing */
  account: KeyPair;
  devices: Map<string, LinkedDevice>;
  nextDeviceId: number;
  banned: boolean;
  /** a temporary ban ends at this time (login failure 402 with `expire`); null: permanent (406) */
  bannedUntil: number | null;
  /** account locked (403): the primary phone must act before any companion logs in */
  locked: boolean;
  pingsStopped: boolean;
  firstLinkedAt: number | null;
  messagesSent: number;
  recentSends: number[];
  /** recipient jid → time of the first message to it */
  recipientsFirstSeen: Map<string, number>;
  rejected463: number;
  privacyTokensIssued: number;
  acceptedWithToken: number;
  rejectedInvalidToken: number;
  rejected479: number;
  decryptFailures: number;
  retryReceiptsSent: number;
  resentDecrypted: number;
  /** message id → retry receipts sent for it, while no decryptable copy arrived */
  pendingRetries: Map<string, number>;
  /** retry receipts for a session that was offline, sent at its next login */
  queuedRetryReceipts: Array<{ from: string; id: string; count: number }>;
  /** privacy tokens granted while no session was online, pushed at the next login */
  queuedPrivacyTokens: PrivacyTokenGrant[];
}

/** A contact's trusted-contact token for a phone. */
interface PrivacyTokenGrant {
  /** the contact's address as it wrote (phone jid or LID jid) */
  from: string;
  /** the contact's phone number */
  issuer: string;
  /** issue time, unix seconds */
  t: number;
  token: Buffer;
}

type ConnectionStage = 'hello' | 'finish' | 'pairing' | 'ready' | 'closed';

interface PendingPairing {
  phone: PhoneState;
  device: LinkedDevice;
  iqId: string;
  resolve: (value: { phone: string; jid: string }) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingLinkCode {
  phone: string;
  at: number;
  ref: Buffer;
  wrappedCompanionEphemeral: Buffer;
  /** the companion's `companion_platform_display`, e.g. "Chrome (Ubuntu)" */
  platformDisplay: string;
  /** waiting for the companion's companion_finish */
  finish: { resolve: (node: BinaryNode) => void; reject: (error: Error) => void; timer: NodeJS.Timeout } | null;
}

/** Why the phone could not link by code: the control API maps it to a status. */
export class PairingCodeError extends Error {
  constructor(
    readonly reason: 'invalid' | 'not_found' | 'expired' | 'wrong_code' | 'refused',
    message: string,
  ) {
    super(message);
  }
}

interface Connection {
  ws: WebSocket;
  address: string;
  noise: ServerNoise;
  reader: FrameReader;
  stage: ConnectionStage;
  record: ConnectionRecord;
  ephemeral: KeyPair | null;
  clientNoiseKey: string | null;
  pairDeviceIqId: string | null;
  pairing: PendingPairing | null;
  /** a pairing code the companion asked for (companion_hello), waiting for the phone to type it */
  linkCode: PendingLinkCode | null;
  device: LinkedDevice | null;
  /** stanzas are handled strictly in order (decryption counters, Signal state) */
  queue: Promise<void>;
  /** message id → callback, for stanzas the simulator waits on */
  receiptWaiters: Map<string, () => void>;
  /** Counted as a login in flight: connected, neither logged in, showing a QR, nor closed yet. */
  loginPending: boolean;
}

/** WhatsApp's `encrypt/get/digest` answer: registration id, key type, identity, signed pre-key, pre-key ids, hash. */
function digestOf(bundle: CompanionBundle): BinaryNode {
  const u32 = (n: number) => Buffer.from([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const u24 = (n: number) => Buffer.from([(n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const hash = createHash('sha1')
    .update(bundle.identity)
    .update(bundle.signedPreKey.value)
    .update(bundle.signedPreKey.signature)
    .update(Buffer.concat(bundle.preKeys.map((k) => k.value)))
    .digest();
  return {
    tag: 'digest',
    attrs: {},
    content: [
      { tag: 'registration', attrs: {}, content: u32(bundle.registrationId) },
      { tag: 'type', attrs: {}, content: Buffer.from([5]) },
      { tag: 'identity', attrs: {}, content: bundle.identity },
      {
        tag: 'skey',
        attrs: {},
        content: [
          { tag: 'id', attrs: {}, content: u24(bundle.signedPreKey.id) },
          { tag: 'value', attrs: {}, content: bundle.signedPreKey.value },
          { tag: 'signature', attrs: {}, content: bundle.signedPreKey.signature },
        ],
      },
      { tag: 'list', attrs: {}, content: bundle.preKeys.map((k) => ({ tag: 'id', attrs: {}, content: u24(k.id) })) },
      { tag: 'hash', attrs: {}, content: hash },
    ],
  };
}

const SERVER_JID = 's.whatsapp.net';
/**
 * The server's own address in `from`/`to`: a JID with an empty user, so the encoder writes it as a JID_PAIR token
 * (empty user + the `s.whatsapp.net` token) as WhatsApp does, not as the plain string token `s.whatsapp.net`.
 * Clients decode it as `@s.whatsapp.net` (Baileys' S_WHATSAPP_NET, whatsmeow's types.ServerJID).
 */
const SERVER_ADDRESS = `@${SERVER_JID}`;
/**
 * The simulator's certificate root (a published development key, never WhatsApp's). A client that verifies the
 * Noise certificate chain (Baileys 7.x does) trusts this public key instead of WhatsApp's when pointed at the
 * simulator: wa-worker's `WA_CERT_ROOT_PUBLIC_KEY`. Fixed so a separately started worker can be configured.
 */
export const SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX = '848f8477acda24c92840decc71a3e73d8fc560f8eb151a130cf1a52a70e8da03';
const SIMULATOR_CERT_ROOT: KeyPair = {
  private: Buffer.from('8098cf06295e6a9f47438f41034bbcdbb721d4a5bc05957d3f548f0ce449d843', 'hex'),
  public: Buffer.from(SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX, 'hex'),
};
/**
 * Privacy tokens are the server's: opaque to clients, so the server can check who issued one to whom. Derived from
 * the fixed root so a restarted simulator still accepts the tokens it issued before.
 */
const PRIVACY_TOKEN_KEY = createHmac('sha256', SIMULATOR_CERT_ROOT.private).update('privacy tokens').digest();
const PRIVACY_TOKEN_VERSION = 1;
/** Baileys 7 / WhatsApp Web treat a token older than four 7-day buckets as expired */
const PRIVACY_TOKEN_TTL_S = 28 * 24 * 3600;
const FIRST_DEVICE_ID = 7;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const PAIRING_TIMEOUT_MS = 10_000;
const PREKEY_NOTIFICATION_DELAY_MS = 50;
const RECEIPT_WAIT_MS = 3_000;
/** retry receipts per message before the recipient gives up (Baileys re-sends at most 5 times) */
const MAX_RETRY_RECEIPTS = 3;

/** What a ClientPayload says about the device (see ConnectionRecord.presented). */
function presentedBy(payload: proto.ClientPayload): NonNullable<ConnectionRecord['presented']> {
  const platform = proto.ClientPayload.UserAgent.Platform[payload.userAgent?.platform ?? 0] ?? 'UNKNOWN';
  const propsRaw = payload.devicePairingData?.deviceProps;
  const props = propsRaw && propsRaw.length ? proto.DeviceProps.decode(propsRaw) : null;
  return {
    platform: String(platform),
    os: props?.os ?? null,
    browser: props ? String(proto.DeviceProps.PlatformType[props.platformType ?? 0] ?? props.platformType) : null,
    display: null,
  };
}

/** Strips the IPv4-mapped IPv6 prefix so proxies bound to 127.0.0.x show up as such. */
function normaliseAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const unixSeconds = (): string => String(Math.floor(Date.now() / 1000));
const stanzaId = (): string => randomBytes(8).toString('hex').toUpperCase();

/**
 * Protocol-level fake WhatsApp server for the real Baileys client (6.7.24): Noise handshake, QR pairing,
 * login, pre-key bundles, Signal-encrypted messages both ways, receipts, fault injection, a ban model,
 * and a record of every connection's source address per phone. Loopback only.
 */
export class WhatsAppSimulator {
  readonly events = new EventEmitter();
  readonly url: string;
  /** Public key of the simulator's certificate root (SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX), published to clients. */
  readonly certificateRootPublicKey: Uint8Array;

  private readonly phoneStates = new Map<string, PhoneState>();
  private readonly devicesByNoiseKey = new Map<string, LinkedDevice>();
  private readonly contacts = new Map<string, FakeContact>();
  private readonly connectionsOpen = new Set<Connection>();
  private readonly connectionLog: ConnectionRecord[] = [];
  private readonly logins = { inFlight: 0, max: 0 };
  /** How long the server takes to accept a login (WhatsApp under load, offline sync): 0 = at once. */
  loginDelayMs = 0;
  private readonly messageLog: RecordedMessage[] = [];
  private readonly presenceLog: RecordedPresence[] = [];
  private readonly readLog: RecordedReadReceipt[] = [];
  private readonly lookupLog: RecordedLookup[] = [];
  private readonly groups = new Map<string, GroupState>();
  /**
   * The contact registry for number checks: every number is on WhatsApp (as every number the simulator delivers
   * to has a fake device) except the ones registered here as absent.
   */
  private readonly notOnWhatsApp = new Set<string>();
  private readonly serverStatic = Curve.generateKeyPair();
  private readonly certificateChain: Uint8Array;
  private readonly logger: pino.Logger;
  private readonly qrRefs: number;
  private readonly receipts: 'delivery' | 'read' | 'none';
  private readonly antiSpam: Required<AntiSpamOptions> | null;
  private readonly receiptDelayMs: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Mutable at run time (control API `POST /rules/pairing-code`, tests). */
  pairingCodeTtlMs: number;
  /** Mutable at run time (control API, tests). */
  minClientVersion: ClientVersion | null;
  /** How long the `temp-ban` fault bans a number. */
  private readonly tempBanMs: number;
  /** The version `/sw.js` announces as current (default: the minimum). Mutable at run time. */
  webClientVersion: ClientVersion | null;
  /** Where a client reads the current web client version (`WA_VERSION_URL` of the worker). */
  readonly webVersionUrl: string;
  /** Tests: queue retry receipts (as for an offline session) until `releaseRetryReceipts`. */
  holdRetryReceipts = false;
  /** Mutable at run time (control API `POST /rules/cold-outreach`, tests). */
  coldOutreach: Required<ColdOutreachRule> | null;

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly server: http.Server,
    /** the HTTPS upload host named in `media_conn` answers */
    readonly media: MediaServer,
    opts: SimulatorOptions,
  ) {
    const address = server.address() as AddressInfo;
    this.url = `ws://${opts.host ?? '127.0.0.1'}:${address.port}/ws/chat`;
    this.webVersionUrl = `http://${opts.host ?? '127.0.0.1'}:${address.port}/sw.js`;
    this.webClientVersion = opts.webClientVersion ?? null;
    this.tempBanMs = opts.tempBanMs ?? 24 * HOUR_MS;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.qrRefs = opts.qrRefs ?? 6;
    this.pairingCodeTtlMs = opts.pairingCodeTtlMs ?? 180_000;
    this.receipts = opts.receipts ?? 'delivery';
    this.receiptDelayMs = opts.receiptDelayMs ?? 100;
    this.minClientVersion = opts.minClientVersion ?? null;
    this.coldOutreach = opts.coldOutreach ? { youngForMs: opts.coldOutreach.youngForMs ?? 7 * 24 * HOUR_MS } : null;
    this.antiSpam = opts.antiSpam
      ? {
          maxPerMinute: opts.antiSpam.maxPerMinute ?? 20,
          rateWindowMs: opts.antiSpam.rateWindowMs ?? MINUTE_MS,
          maxNewContactsPerHourYoung: opts.antiSpam.maxNewContactsPerHourYoung ?? 10,
          youngForMs: opts.antiSpam.youngForMs ?? 7 * 24 * HOUR_MS,
        }
      : null;
    const root = SIMULATOR_CERT_ROOT;
    this.certificateRootPublicKey = root.public;
    this.certificateChain = buildCertificateChain(root, this.serverStatic.public);
    wss.on('connection', (ws, req) => this.onConnection(ws, req));
  }

  static async start(opts: SimulatorOptions = {}): Promise<WhatsAppSimulator> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new Error(`simulator must listen on loopback, not ${host}`);
    // One HTTP server: WebSocket upgrades for the chat, plain GETs for what web.whatsapp.com serves (sw.js).
    const server = http.createServer();
    const wss = new WebSocketServer({ server });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
      server.listen(opts.port ?? 0, host);
    });
    const sim = new WhatsAppSimulator(wss, server, await MediaServer.start(), opts);
    server.on('request', (req, res) => sim.onHttpRequest(req, res));
    return sim;
  }

  /**
   * `GET /sw.js`: the web client's service worker script, where clients read the current `client_revision`
   * (`webClientVersion`, by default the minimum version); 404 when the simulator has none to announce.
   */
  private onHttpRequest(req: IncomingMessage, res: ServerResponse): void {
    const version = this.webClientVersion ?? this.minClientVersion;
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/sw.js' || !version) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const data = JSON.stringify({ dynamic_data: { SiteData: { client_revision: version[2] } } });
    res
      .writeHead(200, { 'content-type': 'application/javascript' })
      .end(`self.__swData=JSON.parse(/*BTDS*/${JSON.stringify(data)});`);
  }

  // ------------------------------------------------------------------ public control surface

  /** "Phone `phone` scans this QR": pair-success, verify pair-device-sign, then force the 515 restart. */
  scan(qr: string, phone: string): Promise<{ phone: string; jid: string }> {
    if (!/^\d{6,15}$/.test(phone)) return Promise.reject(new Error(`invalid phone number ${phone}`));
    const [ref, noiseKeyB64, identityB64, advSecretB64] = qr.split(',');
    if (!ref || !noiseKeyB64 || !identityB64 || !advSecretB64) return Promise.reject(new Error('malformed QR'));
    const connection = [...this.connectionsOpen].find(
      (c) => c.stage === 'pairing' && c.clientNoiseKey === noiseKeyB64 && !c.pairing,
    );
    if (!connection) return Promise.reject(new Error('no session is showing this QR'));
    const state = this.phoneState(phone);
    if (state.banned) return Promise.reject(new Error(`phone ${phone} is banned`));
    return this.pairSuccess(connection, state, Buffer.from(identityB64, 'base64'), Buffer.from(advSecretB64, 'base64'));
  }

  /**
   * "The phone types this pairing code" (WhatsApp > Linked devices > Link with phone number). Like the primary
   * phone of 7.x's link-code flow: unwrap the companion's ephemeral key with the typed code, answer with the
   * primary's wrapped ephemeral key and identity (`link_code_companion_reg` notification), then open the
   * companion's key bundle from its `companion_finish`. A wrong code derives other keys, so the bundle does not
   * open: the server refuses the link (`<failure reason="401">`). A code past its lifetime is refused at once.
   */
  async enterPairingCode(phone: string, code: string): Promise<{ phone: string; jid: string }> {
    if (!/^\d{6,15}$/.test(phone)) throw new PairingCodeError('invalid', `invalid phone number ${phone}`);
    const c = [...this.connectionsOpen].find(
      (x) => x.stage === 'pairing' && x.linkCode?.phone === phone && !x.pairing && !x.linkCode.finish,
    );
    if (!c?.linkCode) throw new PairingCodeError('not_found', `no session is waiting for a pairing code for ${phone}`);
    const link = c.linkCode;
    if (Date.now() > link.at + this.pairingCodeTtlMs) {
      this.events.emit('pairing-code-expired', { phone });
      throw new PairingCodeError('expired', 'the pairing code has expired');
    }
    const state = this.phoneState(phone);
    if (state.banned) throw new PairingCodeError('invalid', `phone ${phone} is banned`);
    const typed = code.replace(/[^0-9A-Za-z]/g, '').toUpperCase();
    const wrapped = link.wrappedCompanionEphemeral;
    const companionEphemeral = aesDecryptCTR(
      wrapped.subarray(48, 80),
      await derivePairingCodeKey(typed, wrapped.subarray(0, 32)),
      wrapped.subarray(32, 48),
    );
    const primaryEphemeral = Curve.generateKeyPair();
    const salt = randomBytes(32);
    const iv = randomBytes(16);
    const wrappedPrimary = Buffer.concat([
      salt,
      iv,
      aesEncryptCTR(primaryEphemeral.public, await derivePairingCodeKey(typed, salt), iv),
    ]);
    const finish = new Promise<BinaryNode>((resolve, reject) => {
      const timer = setTimeout(() => {
        link.finish = null;
        reject(new PairingCodeError('refused', 'the session did not answer the pairing notification'));
      }, PAIRING_TIMEOUT_MS);
      link.finish = { resolve, reject, timer };
    });
    this.send(c, {
      tag: 'notification',
      attrs: { from: SERVER_ADDRESS, type: 'link_code_companion_reg', id: stanzaId(), t: unixSeconds() },
      content: [
        {
          tag: 'link_code_companion_reg',
          attrs: { stage: 'primary_hello' },
          content: [
            { tag: 'link_code_pairing_ref', attrs: {}, content: link.ref },
            { tag: 'primary_identity_pub', attrs: {}, content: Buffer.from(state.account.public) },
            { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: wrappedPrimary },
          ],
        },
      ],
    });
    const node = await finish;
    const reg = getBinaryNodeChild(node, 'link_code_companion_reg');
    const bundle = Buffer.from(getBinaryNodeChildBuffer(reg, 'link_code_pairing_wrapped_key_bundle') ?? []);
    const companionIdentity = Buffer.from(getBinaryNodeChildBuffer(reg, 'companion_identity_public') ?? []);
    const companionShared = Buffer.from(Curve.sharedKey(primaryEphemeral.private, companionEphemeral));
    let plain: Buffer | null;
    try {
      const key = hkdf(companionShared, 32, {
        salt: bundle.subarray(0, 32),
        info: 'link_code_pairing_key_bundle_encryption_key',
      });
      plain = Buffer.from(
        aesDecryptGCM(bundle.subarray(44), Buffer.from(key), bundle.subarray(32, 44), Buffer.alloc(0)),
      );
    } catch {
      plain = null;
    }
    if (!plain || plain.length !== 96 || !plain.subarray(0, 32).equals(companionIdentity)) {
      this.events.emit('pairing-code-refused', { phone, address: c.address });
      this.send(c, {
        tag: 'iq',
        attrs: { from: SERVER_ADDRESS, type: 'error', id: node.attrs.id ?? '' },
        content: [{ tag: 'error', attrs: { code: '401', text: 'not-authorized' } }],
      });
      this.closeWith(c, { tag: 'failure', attrs: { reason: '401', location: 'sim' } });
      throw new PairingCodeError('wrong_code', 'wrong pairing code: the link was refused');
    }
    this.result(c, node);
    const identityShared = Buffer.from(Curve.sharedKey(state.account.private, companionIdentity));
    const advSecret = Buffer.from(
      hkdf(Buffer.concat([companionShared, identityShared, plain.subarray(64, 96)]), 32, { info: 'adv_secret' }),
    );
    this.events.emit('pairing-code-accepted', { phone, address: c.address });
    return this.pairSuccess(c, state, companionIdentity, advSecret);
  }

  /** pair-success for a companion (QR or code): the device identity signed by the phone's account key. */
  private pairSuccess(
    connection: Connection,
    state: PhoneState,
    identity: Buffer,
    advSecret: Buffer,
  ): Promise<{ phone: string; jid: string }> {
    const phone = state.phone;
    const noiseKeyB64 = connection.clientNoiseKey!;
    const deviceId = state.nextDeviceId++;
    const device: LinkedDevice = {
      phone,
      deviceId,
      jid: `${phone}:${deviceId}@${SERVER_JID}`,
      lid: `${lidUserFor(phone)}:${deviceId}@lid`,
      noiseKey: noiseKeyB64,
      identity,
      bundle: null,
      appStateKeyShared: false,
      historySynced: false,
    };
    const details = proto.ADVDeviceIdentity.encode({
      rawId: 1 + (Number.parseInt(phone.slice(-6), 10) % 100_000),
      timestamp: Math.floor(Date.now() / 1000),
      keyIndex: 1,
    }).finish();
    const accountSignature = Curve.sign(
      state.account.private,
      Buffer.concat([Buffer.from([6, 0]), details, identity]),
    ) as Uint8Array;
    const account = proto.ADVSignedDeviceIdentity.encode({
      details,
      accountSignatureKey: state.account.public,
      accountSignature,
    }).finish();
    // Baileys really checks this HMAC with its advSecretKey, so a wrong QR cannot pair.
    const hmac = hmacSign(account, advSecret);
    const deviceIdentity = proto.ADVSignedDeviceIdentityHMAC.encode({ details: account, hmac }).finish();
    const iqId = stanzaId();
    connection.record.phone = phone;

    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        connection.pairing = null;
        reject(new Error('the session did not answer pair-success'));
      }, PAIRING_TIMEOUT_MS);
      connection.pairing = { phone: state, device, iqId, resolve, reject, timer };
      this.send(connection, {
        tag: 'iq',
        attrs: { from: SERVER_ADDRESS, type: 'set', id: iqId, xmlns: 'md' },
        content: [
          {
            tag: 'pair-success',
            attrs: {},
            content: [
              { tag: 'device-identity', attrs: {}, content: deviceIdentity },
              { tag: 'platform', attrs: { name: 'android' } },
              { tag: 'device', attrs: { jid: device.jid, lid: device.lid } },
            ],
          },
        ],
      });
    });
  }

  /**
   * The phone's account key and linked devices as plain JSON, so a test fixture (an auth folder written by an
   * older client) can be reconnected by a later simulator without a new QR scan.
   */
  exportPhone(phone: string): ExportedPhone {
    const state = this.phoneStates.get(phone);
    if (!state) throw new Error(`unknown phone ${phone}`);
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
    return {
      phone,
      account: { public: b64(state.account.public), private: b64(state.account.private) },
      nextDeviceId: state.nextDeviceId,
      firstLinkedAt: state.firstLinkedAt,
      devices: [...state.devices.values()].map((d) => ({
        deviceId: d.deviceId,
        jid: d.jid,
        lid: d.lid,
        noiseKey: d.noiseKey,
        identity: b64(d.identity),
        appStateKeyShared: d.appStateKeyShared,
        historySynced: d.historySynced,
        bundle: d.bundle && {
          registrationId: d.bundle.registrationId,
          identity: b64(d.bundle.identity),
          signedPreKey: {
            id: d.bundle.signedPreKey.id,
            value: b64(d.bundle.signedPreKey.value),
            signature: b64(d.bundle.signedPreKey.signature),
          },
          preKeys: d.bundle.preKeys.map((k) => ({ id: k.id, value: b64(k.value) })),
        },
      })),
    };
  }

  /** Restores what `exportPhone` returned (replacing any state of that phone). */
  importPhone(exported: ExportedPhone): void {
    const buf = (s: string): Buffer => Buffer.from(s, 'base64');
    const state = this.phoneState(exported.phone);
    for (const device of state.devices.values()) this.devicesByNoiseKey.delete(device.noiseKey);
    state.devices.clear();
    state.account = { public: buf(exported.account.public), private: buf(exported.account.private) };
    // the primary's Signal identity is the account key: forget one made with another account
    this.contacts.delete(`${exported.phone}@${SERVER_JID}`);
    state.nextDeviceId = exported.nextDeviceId;
    state.firstLinkedAt = exported.firstLinkedAt;
    for (const d of exported.devices) {
      const device: LinkedDevice = {
        phone: exported.phone,
        deviceId: d.deviceId,
        jid: d.jid,
        lid: d.lid,
        noiseKey: d.noiseKey,
        identity: buf(d.identity),
        appStateKeyShared: d.appStateKeyShared,
        historySynced: d.historySynced ?? d.appStateKeyShared,
        bundle: d.bundle && {
          registrationId: d.bundle.registrationId,
          identity: buf(d.bundle.identity),
          signedPreKey: {
            id: d.bundle.signedPreKey.id,
            value: buf(d.bundle.signedPreKey.value),
            signature: buf(d.bundle.signedPreKey.signature),
          },
          preKeys: d.bundle.preKeys.map((k) => ({ id: k.id, value: buf(k.value) })),
        },
      };
      state.devices.set(device.noiseKey, device);
      this.devicesByNoiseKey.set(device.noiseKey, device);
    }
  }

  fault(phone: string, kind: FaultKind): void {
    const state = this.phoneStates.get(phone);
    if (!state) throw new Error(`unknown phone ${phone}`);
    this.logger.info({ phone, kind }, 'fault injected');
    this.events.emit('fault', { phone, kind });
    switch (kind) {
      case 'unlink':
        for (const c of this.liveConnections(phone)) {
          this.closeWith(c, {
            tag: 'stream:error',
            attrs: { code: '401' },
            content: [{ tag: 'conflict', attrs: { type: 'device_removed' } }],
          });
        }
        for (const device of state.devices.values()) this.devicesByNoiseKey.delete(device.noiseKey);
        state.devices.clear();
        return;
      case 'replaced':
        for (const c of this.liveConnections(phone)) {
          this.closeWith(c, {
            tag: 'stream:error',
            attrs: {},
            content: [{ tag: 'conflict', attrs: { type: 'replaced' } }],
          });
        }
        return;
      case 'restart':
        for (const c of this.liveConnections(phone)) this.closeWith(c, { tag: 'stream:error', attrs: { code: '515' } });
        return;
      case 'close':
        for (const c of this.liveConnections(phone)) this.closeWith(c, { tag: 'xmlstreamend', attrs: {} });
        return;
      case 'stop-pings':
        state.pingsStopped = true;
        return;
      case 'resume-pings':
        state.pingsStopped = false;
        return;
      case 'ban':
        this.ban(state, 'manual');
        return;
      case 'temp-ban':
        this.ban(state, 'manual', Date.now() + this.tempBanMs);
        return;
      case 'lock':
        state.locked = true;
        for (const c of this.liveConnections(state.phone))
          this.closeWith(c, { tag: 'stream:error', attrs: { code: '403' } });
        this.events.emit('locked', { phone: state.phone });
        return;
      case 'unban':
        state.banned = false;
        state.bannedUntil = null;
        state.locked = false;
        state.recentSends = [];
        return;
    }
  }

  /**
   * A contact (`from`: phone number, phone jid or `<lid>@lid`) sends `text` to the session linked to `phone`. From a
   * LID the message is LID-addressed as WhatsApp sends it today; the phone number travels along (`sender_pn`) only
   * when the contact shares it (`revealPhone`).
   */
  async sendInbound(phone: string, from: string, text: string, opts: { revealPhone?: boolean } = {}): Promise<string> {
    const connection = this.liveConnections(phone)[0];
    if (!connection?.device) throw new Error(`phone ${phone} has no connected session`);
    const fromJid = from.includes('@') ? from : `${from}@${SERVER_JID}`;
    const decoded = jidDecode(fromJid);
    const addressing: Record<string, string> =
      decoded?.server === 'lid'
        ? {
            addressing_mode: 'lid',
            ...(opts.revealPhone ? { sender_pn: `${phoneForLid(decoded.user)}@${SERVER_JID}` } : {}),
          }
        : {};
    const id = await this.deliverFrom(
      connection,
      fromJid,
      { conversation: text },
      { notify: 'Simulated contact', ...addressing },
    );
    this.events.emit('inbound', { phone, from: fromJid, id, text });
    // The contact's client issues its trusted-contact token to the number it wrote to (Baileys 7 / WhatsApp Web do
    // so after each 1:1 send); the server hands it to the number's devices.
    this.grantPrivacyToken(phone, fromJid);
    return id;
  }

  /**
   * A contact (phone number or phone jid) sends an image or a document to the session linked to `phone`: the
   * contact's client encrypts the file with a fresh media key and "uploads" it (the media host serves the encrypted
   * blob at its directPath), then sends the message with the keys and hashes through its Signal session, as
   * `<message type="media">`.
   */
  async sendInboundMedia(
    phone: string,
    from: string,
    media: InboundMediaInput,
  ): Promise<{ id: string; media: SentMedia }> {
    const connection = this.liveConnections(phone)[0];
    if (!connection?.device) throw new Error(`phone ${phone} has no connected session`);
    const fromJid = from.includes('@') ? from : `${from}@${SERVER_JID}`;
    const { message, sent } = this.media.encryptInbound(media);
    const id = await this.deliverFrom(
      connection,
      fromJid,
      message,
      { notify: 'Simulated contact', type: 'media' },
      { mediatype: media.type },
    );
    this.events.emit('inbound', { phone, from: fromJid, id, text: media.caption ?? '', media: sent });
    this.grantPrivacyToken(phone, fromJid);
    return { id, media: sent };
  }

  /**
   * The protobuf of a contact's reaction to, edit of or delete for everyone of message `messageId` in a chat with
   * `chatJid`; the key is in the contact's view: `fromMe` when the contact wrote the target, else its author
   * (`participant`, in a group).
   */
  private actionMessage(
    action: InboundActionInput,
    chatJid: string,
    targetFromContact: boolean,
    participant?: string,
  ): proto.IMessage {
    const key = {
      remoteJid: chatJid,
      fromMe: targetFromContact,
      id: action.messageId,
      ...(participant && !targetFromContact ? { participant } : {}),
    };
    const T = proto.Message.ProtocolMessage.Type;
    if (action.kind === 'reaction')
      return { reactionMessage: { key, text: action.emoji ?? '', senderTimestampMs: Date.now() } };
    if (action.kind === 'revoke') return { protocolMessage: { key, type: T.REVOKE } };
    return {
      protocolMessage: {
        key,
        type: T.MESSAGE_EDIT,
        editedMessage: { conversation: action.text ?? '' },
        timestampMs: Date.now(),
      },
    };
  }

  /**
   * Contact `from` reacts to, edits or deletes for everyone a message of its chat with the session of `phone`. A
   * message the session sent (in the message log) is the session's; any other is the contact's own (edit and
   * delete only touch the contact's own, as WhatsApp allows).
   */
  async sendInboundAction(phone: string, from: string, action: InboundActionInput): Promise<string> {
    const connection = this.liveConnections(phone)[0];
    if (!connection?.device) throw new Error(`phone ${phone} has no connected session`);
    const fromJid = from.includes('@') ? from : `${from}@${SERVER_JID}`;
    const sessions = this.messageLog.some((m) => m.phone === phone && m.id === action.messageId);
    if (sessions && action.kind !== 'reaction') throw new Error(`a contact can only ${action.kind} its own messages`);
    const message = this.actionMessage(action, `${phone}@${SERVER_JID}`, !sessions);
    const id = await this.deliverFrom(connection, fromJid, message, {
      notify: 'Simulated contact',
      ...(action.kind === 'reaction' ? { type: 'reaction' } : {}),
    });
    this.events.emit('inbound-action', { phone, from: fromJid, id, ...action });
    return id;
  }

  /** Member `from` reacts to, edits or deletes a group message (its own, or another member's for a reaction). */
  async sendInboundGroupAction(
    groupJid: string,
    from: string,
    action: InboundActionInput,
  ): Promise<{ id: string; deliveredTo: string[] }> {
    const group = this.groups.get(groupJidOf(groupJid));
    if (!group) throw new Error(`no group ${groupJid}`);
    const sender = jidDecode(from.includes('@') ? from : `${from}@${SERVER_JID}`)?.user ?? from;
    const target = group.messages.find((m) => m.id === action.messageId);
    if (!target) throw new Error(`no message ${action.messageId} in ${group.jid}`);
    const own = target.from === sender;
    if (!own && action.kind !== 'reaction') throw new Error(`a member can only ${action.kind} its own messages`);
    const message = this.actionMessage(action, group.jid, own, `${target.from}@${SERVER_JID}`);
    return this.sendInboundGroupMessage(group.jid, sender, message);
  }

  /**
   * Contact `from` (phone number, phone jid or `<lid>@lid`) issues its privacy token to `phone`: the server pushes
   * `<notification type="privacy_token">` with the token to the phone's connected sessions. Returns the token.
   */
  grantPrivacyToken(phone: string, from: string): Buffer {
    const fromJid = from.includes('@') ? from : `${from}@${SERVER_JID}`;
    const decoded = jidDecode(fromJid);
    if (!decoded?.user || (decoded.server !== SERVER_JID && decoded.server !== 'lid'))
      throw new Error(`not a user address: ${from}`);
    const issuer = decoded.server === 'lid' ? phoneForLid(decoded.user) : decoded.user;
    // a number can be granted a token before it links this companion (queued like any notification)
    const state = this.phoneState(phone);
    const t = Math.floor(Date.now() / 1000);
    const grant: PrivacyTokenGrant = {
      from: `${decoded.user}@${decoded.server}`,
      issuer,
      t,
      token: privacyToken(issuer, phone, t),
    };
    state.privacyTokensIssued++;
    this.events.emit('privacy-token', { phone, from: grant.from, t });
    const live = this.liveConnections(phone);
    // like any notification, kept for a session that is offline and pushed at its next login
    if (live.length === 0) state.queuedPrivacyTokens.push(grant);
    for (const c of live) this.sendPrivacyToken(c, grant);
    return grant.token;
  }

  private sendPrivacyToken(c: Connection, grant: PrivacyTokenGrant): void {
    if (!c.device) return;
    const t = String(grant.t);
    this.send(c, {
      tag: 'notification',
      attrs: {
        from: grant.from,
        type: 'privacy_token',
        id: stanzaId(),
        t,
        sender_lid: `${lidUserFor(grant.issuer)}@lid`,
      },
      content: [
        {
          tag: 'tokens',
          attrs: {},
          // `jid` is the receiving device; clients key the token by the notification's sender
          content: [{ tag: 'token', attrs: { jid: c.device.jid, t, type: 'trusted_contact' }, content: grant.token }],
        },
      ],
    });
  }

  /** Sends the queued retry receipts of `phone` to its live session (see `holdRetryReceipts`). */
  async releaseRetryReceipts(phone: string): Promise<number> {
    this.holdRetryReceipts = false;
    const state = this.phoneStates.get(phone);
    // the newest open connection (an old one may still be closing)
    const c = this.liveConnections(phone)
      .filter((x) => x.ws.readyState === x.ws.OPEN)
      .at(-1);
    if (!state || !c) throw new Error(`phone ${phone} has no connected session`);
    const queued = state.queuedRetryReceipts.splice(0);
    for (const r of queued) await this.sendRetryReceipt(c, state, r.from, r.id, r.count);
    return queued.length;
  }

  /** Contact `contact`'s device loses its Signal sessions: the next message to it needs the retry path. */
  async resetContactSessions(contact: string): Promise<void> {
    await this.contact(contact.includes('@') ? contact : `${contact}@${SERVER_JID}`).forgetSessions();
  }

  /** The recipient read a message the session sent: push a read receipt to the session. */
  markRead(phone: string, messageId: string): void {
    const message = this.messageLog.find((m) => m.phone === phone && m.id === messageId);
    if (!message) throw new Error(`no message ${messageId} from ${phone}`);
    const connection = this.liveConnections(phone)[0];
    if (!connection) throw new Error(`phone ${phone} has no connected session`);
    this.send(connection, {
      tag: 'receipt',
      attrs: { id: messageId, from: message.to, type: 'read', t: unixSeconds() },
    });
  }

  messages(phone?: string): RecordedMessage[] {
    return this.messageLog.filter((m) => phone === undefined || m.phone === phone).map((m) => ({ ...m }));
  }

  /** Chat states the session of `phone` sent, oldest first; `contact` (user part) narrows to one chat. */
  presence(phone?: string, contact?: string): RecordedPresence[] {
    return this.presenceLog
      .filter((p) => (phone === undefined || p.phone === phone) && (contact === undefined || p.contact === contact))
      .map((p) => ({ ...p }));
  }

  /** Read receipts the session of `phone` sent. */
  readReceipts(phone?: string): RecordedReadReceipt[] {
    return this.readLog.filter((r) => phone === undefined || r.phone === phone).map((r) => ({ ...r }));
  }

  /** Contact lookups (number checks) the session of `phone` made. */
  lookups(phone?: string): RecordedLookup[] {
    return this.lookupLog.filter((l) => phone === undefined || l.phone === phone).map((l) => ({ ...l }));
  }

  /** Registers a number as on WhatsApp or not (the answer to usync contact queries). */
  setOnWhatsApp(number: string, onWhatsApp: boolean): void {
    if (onWhatsApp) this.notOnWhatsApp.delete(number);
    else this.notOnWhatsApp.add(number);
  }

  isOnWhatsApp(number: string): boolean {
    return !this.notOnWhatsApp.has(number);
  }

  /** Logins in flight now, and the most seen at once since the last reset. */
  loginConcurrency(): { inFlight: number; max: number } {
    return { ...this.logins };
  }

  resetLoginConcurrency(): void {
    this.logins.max = this.logins.inFlight;
  }

  private settleLogin(c: Connection): void {
    if (!c.loginPending) return;
    c.loginPending = false;
    this.logins.inFlight--;
  }

  connections(phone?: string): ConnectionRecord[] {
    return this.connectionLog.filter((c) => phone === undefined || c.phone === phone).map((c) => ({ ...c }));
  }

  sourceAddresses(phone: string): string[] {
    return [...new Set(this.connectionLog.filter((c) => c.phone === phone).map((c) => c.address))];
  }

  phones(): PhoneSummary[] {
    return [...this.phoneStates.values()].map((s) => ({
      phone: s.phone,
      linked: s.devices.size > 0,
      banned: s.banned,
      online: this.liveConnections(s.phone).length > 0,
      messagesSent: s.messagesSent,
      rejected463: s.rejected463,
      rejected479: s.rejected479,
      privacyTokensIssued: s.privacyTokensIssued,
      acceptedWithToken: s.acceptedWithToken,
      rejectedInvalidToken: s.rejectedInvalidToken,
      decryptFailures: s.decryptFailures,
      retryReceiptsSent: s.retryReceiptsSent,
      resentDecrypted: s.resentDecrypted,
      undecryptable: s.pendingRetries.size,
    }));
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const c of this.connectionsOpen) {
      if (c.pairing) {
        clearTimeout(c.pairing.timer);
        c.pairing.reject(new Error('simulator closed'));
        c.pairing = null;
      }
      c.ws.terminate();
    }
    this.connectionsOpen.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.media.close();
  }

  // ------------------------------------------------------------------ connection handling

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const address = normaliseAddress(req.socket.remoteAddress);
    const record: ConnectionRecord = { phone: null, address, at: Date.now(), kind: 'registration' };
    const connection: Connection = {
      ws,
      address,
      noise: new ServerNoise(),
      reader: new FrameReader(NOISE_WA_HEADER),
      stage: 'hello',
      record,
      ephemeral: null,
      clientNoiseKey: null,
      pairDeviceIqId: null,
      pairing: null,
      linkCode: null,
      device: null,
      queue: Promise.resolve(),
      receiptWaiters: new Map(),
      loginPending: true,
    };
    this.connectionsOpen.add(connection);
    this.logins.inFlight++;
    this.logins.max = Math.max(this.logins.max, this.logins.inFlight);
    this.logger.debug({ address, url: req.url }, 'websocket connected');
    ws.on('message', (data: Buffer) => {
      connection.queue = connection.queue
        .then(() => this.onData(connection, data))
        .catch((error: unknown) => {
          this.logger.warn({ err: error, address }, 'protocol error, closing connection');
          ws.terminate();
        });
    });
    ws.on('error', (error) => this.logger.debug({ err: error }, 'websocket error'));
    ws.on('close', () => {
      connection.stage = 'closed';
      connection.record.closedAt = Date.now();
      this.settleLogin(connection);
      this.connectionsOpen.delete(connection);
      for (const release of [...connection.receiptWaiters.values()]) release();
      if (connection.pairing) {
        clearTimeout(connection.pairing.timer);
        connection.pairing.reject(new Error('the session disconnected during pairing'));
        connection.pairing = null;
      }
      if (connection.linkCode?.finish) {
        clearTimeout(connection.linkCode.finish.timer);
        connection.linkCode.finish.reject(new PairingCodeError('refused', 'the session disconnected during pairing'));
        connection.linkCode.finish = null;
      }
    });
  }

  private async onData(c: Connection, data: Buffer): Promise<void> {
    const { header, frames } = c.reader.push(data);
    if (header) c.noise.authenticate(header);
    for (const frame of frames) {
      if (c.stage === 'closed') return;
      await this.onFrame(c, frame);
    }
  }

  private async onFrame(c: Connection, frame: Buffer): Promise<void> {
    const noise = c.noise;
    if (c.stage === 'hello') {
      const clientEphemeral = proto.HandshakeMessage.decode(frame).clientHello?.ephemeral;
      if (!clientEphemeral || clientEphemeral.length !== 32) throw new Error('client hello without ephemeral key');
      noise.authenticate(clientEphemeral);
      const ephemeral = Curve.generateKeyPair();
      c.ephemeral = ephemeral;
      noise.authenticate(ephemeral.public);
      await noise.mixIntoKey(Curve.sharedKey(ephemeral.private, clientEphemeral));
      const encryptedStatic = noise.handshakeEncrypt(this.serverStatic.public);
      await noise.mixIntoKey(Curve.sharedKey(this.serverStatic.private, clientEphemeral));
      const encryptedCertificate = noise.handshakeEncrypt(this.certificateChain);
      const serverHello = proto.HandshakeMessage.encode({
        serverHello: { ephemeral: ephemeral.public, static: encryptedStatic, payload: encryptedCertificate },
      }).finish();
      c.ws.send(encodeFrame(serverHello));
      c.stage = 'finish';
      return;
    }
    if (c.stage === 'finish') {
      const clientFinish = proto.HandshakeMessage.decode(frame).clientFinish;
      if (!clientFinish?.static || !clientFinish.payload || !c.ephemeral) throw new Error('bad client finish');
      const clientStatic = noise.handshakeDecrypt(clientFinish.static);
      await noise.mixIntoKey(Curve.sharedKey(c.ephemeral.private, clientStatic));
      const payload = proto.ClientPayload.decode(noise.handshakeDecrypt(clientFinish.payload));
      await noise.finish();
      c.clientNoiseKey = clientStatic.toString('base64');
      c.record.presented = presentedBy(payload);
      const v = payload.userAgent?.appVersion;
      const announced: ClientVersion = [v?.primary ?? 0, v?.secondary ?? 0, v?.tertiary ?? 0];
      if (this.minClientVersion && versionBelow(announced, this.minClientVersion)) {
        // like WhatsApp: a stale client is refused at login with 405 (client_too_old), pairing or not
        c.record.kind = 'rejected';
        this.connectionLog.push(c.record);
        this.events.emit('client-too-old', { version: announced.join('.'), address: c.address });
        this.closeWith(c, { tag: 'failure', attrs: { reason: '405', location: 'sim' } });
        return;
      }
      if (payload.devicePairingData) this.startPairing(c);
      else await this.login(c, payload);
      return;
    }
    const node = await decodeBinaryNode(noise.decrypt(frame));
    await this.onNode(c, node);
  }

  private send(c: Connection, node: BinaryNode): void {
    if (c.stage === 'closed') return;
    c.ws.send(encodeFrame(c.noise.encrypt(encodeBinaryNode(node))));
  }

  /** Sends a terminal stanza, then closes; ws flushes queued frames before the close frame. */
  private closeWith(c: Connection, node: BinaryNode): void {
    this.send(c, node);
    c.stage = 'closed';
    // 1000 with the stanza's code as the reason: the close frame carries a status, as WhatsApp's does
    c.ws.close(1000, node.attrs.code ?? node.tag);
  }

  private later(delayMs: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, delayMs);
    this.timers.add(timer);
  }

  private liveConnections(phone: string): Connection[] {
    return [...this.connectionsOpen].filter((c) => c.stage === 'ready' && c.device?.phone === phone);
  }

  private phoneState(phone: string): PhoneState {
    let state = this.phoneStates.get(phone);
    if (!state) {
      state = {
        phone,
        account: Curve.generateKeyPair(),
        devices: new Map(),
        nextDeviceId: FIRST_DEVICE_ID,
        banned: false,
        bannedUntil: null,
        locked: false,
        pingsStopped: false,
        firstLinkedAt: null,
        messagesSent: 0,
        recentSends: [],
        recipientsFirstSeen: new Map(),
        rejected463: 0,
        privacyTokensIssued: 0,
        acceptedWithToken: 0,
        rejectedInvalidToken: 0,
        rejected479: 0,
        decryptFailures: 0,
        retryReceiptsSent: 0,
        resentDecrypted: 0,
        pendingRetries: new Map(),
        queuedRetryReceipts: [],
        queuedPrivacyTokens: [],
      };
      this.phoneStates.set(phone, state);
    }
    return state;
  }

  /** One contact per (user, device), whether addressed by phone number or by LID. */
  private contact(jid: string): FakeContact {
    const key = pnJidOf(jid);
    let contact = this.contacts.get(key);
    if (!contact) {
      // a simulated phone's primary device (device 0) signs with its account identity, as it did at pairing
      const decoded = jidDecode(key);
      const primaryOf = decoded && !decoded.device ? this.phoneStates.get(decoded.user) : undefined;
      this.contacts.set(key, (contact = new FakeContact(key, primaryOf?.account)));
    }
    return contact;
  }

  /** A linked companion device of a simulated phone, by jid (phone number or LID, with its device id). */
  private linkedDevice(jid: string): LinkedDevice | undefined {
    const decoded = jidDecode(pnJidOf(jid));
    if (!decoded?.device) return undefined;
    for (const device of this.phoneStates.get(decoded.user)?.devices.values() ?? [])
      if (device.deviceId === decoded.device) return device;
    return undefined;
  }

  // ------------------------------------------------------------------ pairing and login

  private startPairing(c: Connection): void {
    this.connectionLog.push(c.record);
    const refs: BinaryNode[] = Array.from({ length: this.qrRefs }, (_, i) => ({
      tag: 'ref',
      attrs: {},
      content: Buffer.from(`2@sim${i}${randomBytes(18).toString('base64')}`),
    }));
    c.pairDeviceIqId = stanzaId();
    c.stage = 'pairing';
    this.settleLogin(c);
    this.send(c, {
      tag: 'iq',
      attrs: { from: SERVER_ADDRESS, type: 'set', id: c.pairDeviceIqId, xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs }],
    });
    this.events.emit('qr-shown', { refs: this.qrRefs, address: c.address });
  }

  /** companion_hello (asks for a code) and companion_finish (its key bundle, after the phone typed the code). */
  private onLinkCodeStanza(c: Connection, node: BinaryNode): void {
    const reg = getBinaryNodeChild(node, 'link_code_companion_reg');
    const stage = reg?.attrs.stage;
    if (stage === 'companion_finish' && c.linkCode?.finish) {
      const { resolve, timer } = c.linkCode.finish;
      clearTimeout(timer);
      c.linkCode.finish = null;
      resolve(node);
      return;
    }
    const phone = jidDecode(reg?.attrs.jid ?? '')?.user;
    const wrapped = getBinaryNodeChildBuffer(reg, 'link_code_pairing_wrapped_companion_ephemeral_pub');
    if (stage !== 'companion_hello' || c.stage !== 'pairing' || !phone || !wrapped || wrapped.length !== 80) {
      this.send(c, {
        tag: 'iq',
        attrs: { from: SERVER_ADDRESS, type: 'error', id: node.attrs.id ?? '' },
        content: [{ tag: 'error', attrs: { code: '400', text: 'bad-request' } }],
      });
      return;
    }
    const display = getBinaryNodeChildBuffer(reg, 'companion_platform_display');
    c.linkCode = {
      phone,
      at: Date.now(),
      ref: randomBytes(16),
      wrappedCompanionEphemeral: Buffer.from(wrapped),
      platformDisplay: display ? Buffer.from(display).toString('utf8') : '',
      finish: null,
    };
    if (c.record.presented) c.record.presented.display = c.linkCode.platformDisplay;
    this.result(c, node, [
      {
        tag: 'link_code_companion_reg',
        attrs: {},
        content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: c.linkCode.ref }],
      },
    ]);
    this.events.emit('pairing-code-requested', { phone, address: c.address, platform: c.linkCode.platformDisplay });
  }

  private onPairDeviceSign(c: Connection, pairing: PendingPairing, node: BinaryNode): void {
    clearTimeout(pairing.timer);
    c.pairing = null;
    const signed = getBinaryNodeChild(getBinaryNodeChild(node, 'pair-device-sign'), 'device-identity');
    if (!(signed?.content instanceof Uint8Array)) {
      pairing.reject(new Error('pair-device-sign without device identity'));
      return;
    }
    const identity = proto.ADVSignedDeviceIdentity.decode(signed.content);
    const { device, phone: state } = pairing;
    const signatureValid =
      !!identity.details &&
      !!identity.deviceSignature &&
      Curve.verify(
        device.identity,
        Buffer.concat([Buffer.from([6, 1]), identity.details, device.identity, state.account.public]),
        identity.deviceSignature,
      );
    if (!signatureValid) {
      pairing.reject(new Error('invalid device signature in pair-device-sign'));
      this.closeWith(c, { tag: 'failure', attrs: { reason: '401' } });
      return;
    }
    state.devices.set(device.noiseKey, device);
    this.devicesByNoiseKey.set(device.noiseKey, device);
    state.firstLinkedAt ??= Date.now();
    this.events.emit('paired', { phone: state.phone, jid: device.jid, address: c.address });
    pairing.resolve({ phone: state.phone, jid: device.jid });
    // like the real server: the freshly paired client must reconnect and log in
    this.closeWith(c, { tag: 'stream:error', attrs: { code: '515' } });
  }

  private async login(c: Connection, payload: proto.ClientPayload): Promise<void> {
    const device = c.clientNoiseKey ? this.devicesByNoiseKey.get(c.clientNoiseKey) : undefined;
    const username = payload.username?.toString();
    const state = device ? this.phoneStates.get(device.phone) : undefined;
    c.record.phone = device?.phone ?? (username && this.phoneStates.has(username) ? username : null);
    this.connectionLog.push(c.record);
    if (!device || !state || username !== device.phone || payload.device !== device.deviceId) {
      c.record.kind = 'rejected';
      this.logger.info({ username, device: payload.device }, 'login with unknown credentials');
      this.closeWith(c, { tag: 'failure', attrs: { reason: '401', location: 'sim' } });
      return;
    }
    if (state.banned && state.bannedUntil !== null && Date.now() >= state.bannedUntil) {
      state.banned = false; // a temporary ban has run out
      state.bannedUntil = null;
    }
    if (state.banned || state.locked) {
      c.record.kind = 'rejected';
      const { code, ...rest } = state.banned ? banAttrs(state) : { code: '403' };
      this.closeWith(c, { tag: 'failure', attrs: { reason: code!, location: 'sim', ...rest } });
      return;
    }
    if (this.loginDelayMs > 0) {
      await new Promise<void>((resolve) => this.later(this.loginDelayMs, resolve));
      if (c.stage === 'closed') return;
    }
    c.record.kind = 'login';
    c.device = device;
    c.stage = 'ready';
    this.settleLogin(c);
    this.send(c, {
      tag: 'success',
      attrs: { t: unixSeconds(), props: '1', abprops: '1', location: 'sim', lid: device.lid, creation: '1' },
    });
    this.events.emit('login', { phone: device.phone, jid: device.jid, address: c.address });
  }

  /**
   * Answers `passive/set/active`, after which Baileys emits `open`. Like the real primary phone, first share
   * an app-state sync key (once per device) and hold the answer until the client confirmed it with a receipt:
   * the client then already has a Signal session with its own phone when the application starts sending
   * (otherwise it races, fetches a second bundle and libsignal replaces the session). Then the offline marker
   * and a history sync notification let Baileys leave its initial-sync state and flush events (baileys.md §7).
   * Runs outside the connection's stanza queue, because it waits for a stanza from the client.
   */
  private async completeLogin(c: Connection, passiveIq: BinaryNode): Promise<void> {
    const device = c.device;
    if (!device) return;
    const ownPhoneJid = `${device.phone}@${SERVER_JID}`;
    if (!device.appStateKeyShared && device.bundle) {
      const keyShare: proto.IMessage = {
        protocolMessage: {
          type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE,
          appStateSyncKeyShare: {
            keys: [
              {
                keyId: { keyId: randomBytes(6) },
                keyData: {
                  keyData: randomBytes(32),
                  fingerprint: { rawId: 1, currentIndex: 0, deviceIndexes: [0] },
                  timestamp: Date.now(),
                },
              },
            ],
          },
        },
      };
      const receipt = this.receiptFor(c, await this.deliverFrom(c, ownPhoneJid, keyShare, {}));
      device.appStateKeyShared = true;
      await receipt;
    }
    this.result(c, passiveIq);
    this.send(c, { tag: 'ib', attrs: {}, content: [{ tag: 'offline', attrs: { count: '0' } }] });
    if (!device.historySynced) {
      // Like the primary phone, the history goes to a newly linked device once, at its first login: an (empty)
      // initial bootstrap, inline so nothing needs downloading. Baileys 7 then syncs app state, counts the sync in
      // its credentials (accountSyncCounter) and does not wait for a history sync at later logins.
      const history = proto.HistorySync.encode({
        syncType: proto.HistorySync.HistorySyncType.INITIAL_BOOTSTRAP,
        conversations: [],
        progress: 100,
      }).finish();
      const bootstrap: proto.IMessage = {
        protocolMessage: {
          type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION,
          historySyncNotification: {
            syncType: proto.Message.HistorySyncType.INITIAL_BOOTSTRAP,
            initialHistBootstrapInlinePayload: deflateSync(history),
            progress: 100,
          },
        },
      };
      await this.deliverFrom(c, ownPhoneJid, bootstrap, {});
      device.historySynced = true;
    }
    // Retry receipts the session missed while it was offline (WhatsApp queues them like any receipt).
    const state = this.phoneStates.get(device.phone);
    for (const r of state?.queuedRetryReceipts.splice(0) ?? [])
      await this.sendRetryReceipt(c, state!, r.from, r.id, r.count);
    for (const grant of state?.queuedPrivacyTokens.splice(0) ?? []) this.sendPrivacyToken(c, grant);
  }

  /** Resolves when the client sends a receipt for `messageId`, the connection closes, or after a timeout. */
  private receiptFor(c: Connection, messageId: string): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        c.receiptWaiters.delete(messageId);
        resolve();
      };
      const timer = setTimeout(done, RECEIPT_WAIT_MS);
      c.receiptWaiters.set(messageId, done);
    });
  }

  // ------------------------------------------------------------------ stanzas from the client

  private async onNode(c: Connection, node: BinaryNode): Promise<void> {
    const { tag, attrs } = node;
    if (tag === 'iq') {
      if (attrs.type === 'result' && attrs.id === c.pairDeviceIqId) return;
      if (c.pairing && attrs.id === c.pairing.iqId) {
        if (attrs.type === 'result') this.onPairDeviceSign(c, c.pairing, node);
        else c.pairing.reject(new Error(`session refused pair-success (${attrs.type})`));
        return;
      }
      await this.onIq(c, node);
      return;
    }
    if (tag === 'message') {
      await this.onMessage(c, node);
      return;
    }
    if (tag === 'receipt' && attrs.id) c.receiptWaiters.get(attrs.id)?.();
    if (tag === 'receipt' && (attrs.type === 'read' || attrs.type === 'read-self')) this.recordRead(c, node);
    if (tag === 'receipt' || tag === 'ack') {
      this.events.emit(`client-${tag}`, { phone: c.device?.phone, attrs });
      return;
    }
    if (tag === 'chatstate') {
      this.recordChatState(c, node);
      return;
    }
    // presence, ib and the like need no answer
  }

  /** `<receipt type="read" to=chat id=first><list><item id=…/></list></receipt>` from the session. */
  private recordRead(c: Connection, node: BinaryNode): void {
    const phone = c.device?.phone;
    const contact = jidDecode(node.attrs.to ?? '')?.user;
    if (!phone || !contact || !node.attrs.id) return;
    const more = getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'item').map((i) => i.attrs.id ?? '');
    const messageIds = [node.attrs.id, ...more.filter(Boolean)];
    const type = node.attrs.type === 'read-self' ? 'read-self' : 'read';
    const participant = node.attrs.participant ? jidDecode(node.attrs.participant)?.user : undefined;
    this.readLog.push({ phone, contact, ...(participant ? { participant } : {}), messageIds, type, at: Date.now() });
    this.events.emit('read-receipt', { phone, contact, messageIds });
  }

  /** `<chatstate to=…><composing/></chatstate>` (`<composing media="audio"/>` = recording, `<paused/>`). */
  private recordChatState(c: Connection, node: BinaryNode): void {
    const phone = c.device?.phone;
    const contact = jidDecode(node.attrs.to ?? '')?.user;
    const child = Array.isArray(node.content) ? node.content[0] : undefined;
    if (!phone || !contact || !child) return;
    let state: RecordedPresence['state'] | undefined;
    if (child.tag === 'composing') state = child.attrs.media === 'audio' ? 'recording' : 'composing';
    else if (child.tag === 'paused') state = 'paused';
    if (!state) return;
    this.presenceLog.push({ phone, contact, state, at: Date.now() });
    this.events.emit('chatstate', { phone, contact, state });
  }

  private result(c: Connection, request: BinaryNode, content?: BinaryNode[]): void {
    const id = request.attrs.id;
    if (!id) return;
    this.send(c, { tag: 'iq', attrs: { from: SERVER_ADDRESS, type: 'result', id }, content });
  }

  private async onIq(c: Connection, node: BinaryNode): Promise<void> {
    const first = Array.isArray(node.content) ? node.content[0] : undefined;
    const key = `${node.attrs.xmlns}/${node.attrs.type}/${first?.tag}`;
    const device = c.device;
    // Any `w:p` get is a keep-alive ping, whatever its children (clients differ in the shape they send).
    if (node.attrs.xmlns === 'w:p' && node.attrs.type === 'get') {
      if (device && this.phoneStates.get(device.phone)?.pingsStopped) return;
      this.result(c, node);
      return;
    }
    if (node.attrs.xmlns === 'w:g2') {
      this.onGroupIq(c, node, first);
      return;
    }
    switch (key) {
      case 'encrypt/get/count':
        this.result(c, node, [{ tag: 'count', attrs: { value: String(device?.bundle?.preKeys.length ?? 0) } }]);
        return;
      case 'encrypt/get/digest':
        // Like WhatsApp: the digest of the key bundle this device uploaded. Without a digest node a client takes its
        // keys for lost and generates and uploads a whole new set of pre-keys after every login.
        if (!device?.bundle) {
          this.result(c, node);
          return;
        }
        this.result(c, node, [digestOf(device.bundle)]);
        return;
      case 'encrypt/set/registration':
        if (device) device.bundle = parseUploadedBundle(node);
        this.events.emit('pre-keys-uploaded', { phone: device?.phone, count: device?.bundle?.preKeys.length ?? 0 });
        this.result(c, node);
        return;
      case 'passive/set/active':
        this.completeLogin(c, node).catch((error: unknown) => {
          this.logger.warn({ err: error }, 'could not complete the login');
          c.ws.terminate();
        });
        return;
      case 'w/get/props':
        this.result(c, node, [{ tag: 'props', attrs: { protocol: '2', hash: 'sim' }, content: [] }]);
        return;
      case 'blocklist/get/undefined':
        this.result(c, node, [{ tag: 'list', attrs: {}, content: [] }]);
        return;
      case 'privacy/get/privacy':
        this.result(c, node, [
          { tag: 'privacy', attrs: {}, content: [{ tag: 'category', attrs: { name: 'readreceipts', value: 'all' } }] },
        ]);
        return;
      case 'w:sync:app:state/set/sync':
        this.onAppStateSync(c, node);
        return;
      case 'privacy/set/tokens':
        // The session issues its own trusted-contact token to a contact (Baileys 7 does after each 1:1 send and
        // after a 463). The simulated contacts do not need it; the answer carries no token back: only a contact
        // grants one (writing to the number), so a 463 cannot be cleared by the sender alone.
        this.result(c, node);
        return;
      case 'usync/get/usync':
        this.onUsync(c, node);
        return;
      case 'encrypt/get/key':
        await this.onKeyFetch(c, node);
        return;
      case 'md/set/link_code_companion_reg':
        this.onLinkCodeStanza(c, node);
        return;
      case 'w:m/set/media_conn':
        // WhatsApp names its upload hosts here; the simulator names its own HTTPS endpoint (self-signed, loopback)
        this.result(c, node, [
          {
            tag: 'media_conn',
            attrs: { auth: this.media.auth, ttl: '3600' },
            content: [{ tag: 'host', attrs: { hostname: this.media.host, maxContentLengthBytes: '134217728' } }],
          },
        ]);
        return;
      case 'md/set/remove-companion-device':
        // the session logged out itself
        if (device) {
          this.phoneStates.get(device.phone)?.devices.delete(device.noiseKey);
          this.devicesByNoiseKey.delete(device.noiseKey);
        }
        this.result(c, node);
        return;
      default:
        // an empty result keeps Baileys happy for every query the simulator does not model
        this.logger.debug({ key }, 'unmodelled iq answered with an empty result');
        this.result(c, node);
    }
  }

  /**
   * App-state sync: the simulator keeps no chat settings, so every requested collection is answered as one with
   * nothing newer than the client has: `<collection name version>` without patches, snapshot or more to come.
   * (An answer without `<sync>` is malformed: clients error out, and Baileys re-asks forever.)
   */
  private onAppStateSync(c: Connection, node: BinaryNode): void {
    const requested = getBinaryNodeChildren(getBinaryNodeChild(node, 'sync'), 'collection');
    const collections: BinaryNode[] = requested
      .filter((r) => !!r.attrs.name)
      .map((r) => ({
        tag: 'collection',
        attrs: { name: r.attrs.name!, version: /^\d+$/.test(r.attrs.version ?? '') ? r.attrs.version! : '0' },
      }));
    this.result(c, node, [{ tag: 'sync', attrs: {}, content: collections }]);
  }

  private onUsync(c: Connection, node: BinaryNode): void {
    const usync = getBinaryNodeChild(node, 'usync');
    const users = getBinaryNodeChildren(getBinaryNodeChild(usync, 'list'), 'user');
    const query = getBinaryNodeChild(usync, 'query');
    const wantsDevices = !!getBinaryNodeChild(query, 'devices');
    const wantsLid = !!getBinaryNodeChild(query, 'lid');
    const wantsContact = !!getBinaryNodeChild(query, 'contact');
    const list: BinaryNode[] = [];
    const looked: string[] = [];
    for (const user of users) {
      // A number check: `<user><contact>+15551234567</contact></user>`, answered `in` / `out` from the registry.
      const asked = wantsContact && !user.attrs.jid ? contactNumberOf(getBinaryNodeChild(user, 'contact')) : undefined;
      if (asked) {
        looked.push(asked);
        const exists = this.isOnWhatsApp(asked);
        const content: BinaryNode[] = [{ tag: 'contact', attrs: { type: exists ? 'in' : 'out' } }];
        if (wantsLid && exists) content.push({ tag: 'lid', attrs: { val: `${lidUserFor(asked)}@lid` } });
        list.push({ tag: 'user', attrs: { jid: `${asked}@${SERVER_JID}` }, content });
        continue;
      }
      const requested = user.attrs.jid;
      const decoded = jidDecode(requested);
      if (!requested || !decoded?.user) continue;
      // every phone number has a LID; a LID-addressed user is answered in LID space
      const phone = decoded.server === 'lid' ? phoneForLid(decoded.user) : decoded.user;
      const content: BinaryNode[] = [];
      if (wantsDevices) {
        const devices: BinaryNode[] = [{ tag: 'device', attrs: { id: '0' } }];
        for (const linked of this.phoneStates.get(phone)?.devices.values() ?? []) {
          devices.push({ tag: 'device', attrs: { id: String(linked.deviceId), 'key-index': '1' } });
        }
        content.push({ tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: devices }] });
      }
      if (wantsLid) content.push({ tag: 'lid', attrs: { val: `${lidUserFor(phone)}@lid` } });
      list.push({
        tag: 'user',
        attrs: { jid: decoded.server === 'lid' ? `${decoded.user}@lid` : `${phone}@${SERVER_JID}` },
        content,
      });
    }
    if (looked.length > 0 && c.device) this.lookupLog.push({ phone: c.device.phone, numbers: looked, at: Date.now() });
    const usyncAttrs = usync?.attrs ?? {};
    this.result(c, node, [
      {
        tag: 'usync',
        attrs: {
          sid: usyncAttrs.sid ?? '',
          index: '0',
          last: 'true',
          mode: usyncAttrs.mode ?? 'query',
          context: usyncAttrs.context ?? '',
        },
        content: [
          { tag: 'result', attrs: {} },
          { tag: 'list', attrs: {}, content: list },
        ],
      },
    ]);
  }

  private async onKeyFetch(c: Connection, node: BinaryNode): Promise<void> {
    const users = getBinaryNodeChildren(getBinaryNodeChild(node, 'key'), 'user');
    const bundles: BinaryNode[] = [];
    for (const user of users) {
      const jid = user.attrs.jid;
      if (!jid) continue;
      // a linked companion's bundle is the one it uploaded; every other (user, device) is a fake contact with its
      // own identity (a simulated phone's primary: its account identity)
      const companion = this.linkedDevice(jid);
      if (companion?.bundle) bundles.push(companionBundleNode(jid, companion.bundle));
      else bundles.push(await this.contact(jid).bundleNode(jid));
    }
    this.result(c, node, [{ tag: 'list', attrs: {}, content: bundles }]);
  }

  private async onMessage(c: Connection, node: BinaryNode): Promise<void> {
    const device = c.device;
    const id = node.attrs.id;
    const to = node.attrs.to;
    if (!device || !id || !to) return;
    const state = this.phoneStates.get(device.phone);
    if (!state) return;
    if (jidDecode(to)?.server === 'g.us') {
      await this.onGroupMessage(c, state, node);
      return;
    }
    let text: string | undefined;
    let media: RecordedMedia | undefined;
    let details: MessageDetails | undefined;
    let undecryptableBy: string | undefined;
    for (const { participantJid, type, content } of this.contactCopies(node)) {
      try {
        const message = await this.contact(participantJid).decrypt(device.jid, type, content);
        // the recipient's own copy is the message as sent; the sender's other devices get a wrapper
        if (jidDecode(participantJid)?.user === jidDecode(to)?.user) {
          text ??= messageText(message);
          media ??= this.media.open(message) ?? undefined;
          details ??= messageDetails(message);
        }
      } catch (error) {
        this.logger.warn({ err: error, participantJid }, 'could not decrypt a message from the session');
        // the recipient's copy, whether addressed by phone number or LID
        if (jidDecode(pnJidOf(participantJid))?.user === jidDecode(pnJidOf(to))?.user) undecryptableBy = participantJid;
      }
    }
    const at = Date.now();
    // a copy re-sent after a retry receipt belongs to a message the server already accepted (clients send it
    // without a token)
    const refusal = state.pendingRetries.has(id) ? undefined : this.coldOutreachError(state, node, at);
    if (refusal === 'token') state.acceptedWithToken++;
    else if (refusal) {
      if (refusal === '463') state.rejected463++;
      else state.rejected479++;
      if (getBinaryNodeChild(node, 'tctoken')) state.rejectedInvalidToken++;
      this.logger.info({ phone: device.phone, to, id, error: refusal }, 'message refused: no valid privacy token');
      this.events.emit('rejected', { phone: device.phone, to, id, error: Number(refusal) });
      this.send(c, { tag: 'ack', attrs: { class: 'message', id, from: to, t: unixSeconds(), error: refusal } });
      return;
    }
    if (undecryptableBy && text === undefined && media === undefined && details === undefined) {
      // The recipient's device cannot decrypt this copy (e.g. the sender's Signal state went back with a restored
      // backup): like WhatsApp, the server acks it and the device asks for a re-encrypted copy with a retry
      // receipt carrying a fresh key bundle. No delivery receipt until a copy decrypts.
      state.decryptFailures++;
      this.send(c, { tag: 'ack', attrs: { class: 'message', id, from: to, t: unixSeconds() } });
      const count = (state.pendingRetries.get(id) ?? 0) + 1;
      if (count > MAX_RETRY_RECEIPTS) {
        this.logger.warn({ phone: device.phone, id }, 'giving up on a message the recipient cannot decrypt');
        return;
      }
      state.pendingRetries.set(id, count);
      const from = undecryptableBy;
      this.later(this.receiptDelayMs, () => {
        void this.sendRetryReceipt(c, state, from, id, count).catch((error: unknown) =>
          this.logger.warn({ err: error }, 'could not send a retry receipt'),
        );
      });
      return;
    }
    if (state.pendingRetries.delete(id)) state.resentDecrypted++;
    const recorded: RecordedMessage = {
      id,
      phone: device.phone,
      to,
      text: text ?? '',
      at,
      sourceAddress: c.address,
      ...(media ? { media } : {}),
      ...details,
    };
    this.messageLog.push(recorded);
    state.messagesSent++;
    this.events.emit('message', { ...recorded });
    if (!this.acceptSend(c, state, device, to, id, at)) return;
    this.later(PREKEY_NOTIFICATION_DELAY_MS + this.receiptDelayMs, () => {
      this.send(c, { tag: 'receipt', attrs: { id, from: to, t: unixSeconds() } });
      if (this.receipts === 'read')
        this.send(c, { tag: 'receipt', attrs: { id, from: to, type: 'read', t: unixSeconds() } });
    });
  }

  /**
   * The per-device Signal copies (`pkmsg`/`msg`) of a message stanza that are for simulated contacts. A copy for
   * another companion of the sender's own phone is encrypted to what that device uploaded: not for the server.
   */
  private contactCopies(
    node: BinaryNode,
  ): Array<{ participantJid: string; type: 'pkmsg' | 'msg'; content: Uint8Array }> {
    const copies: Array<{ participantJid: string; type: 'pkmsg' | 'msg'; content: Uint8Array }> = [];
    for (const participant of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(participant, 'enc');
      const participantJid = participant.attrs.jid;
      const type = enc?.attrs.type;
      if (!participantJid || !(enc?.content instanceof Uint8Array) || (type !== 'pkmsg' && type !== 'msg')) continue;
      if (this.linkedDevice(participantJid)) continue;
      copies.push({ participantJid, type, content: enc.content });
    }
    return copies;
  }

  /**
   * After a send is recorded: the server's ack, the anti-spam count, then the pre-key count notification. Answers
   * whether receipts follow (the connection is still up and receipts are on).
   *
   * Baileys 6.7.24 emits its own `messages.upsert` through a buffered function that never flushes; the next stanza it
   * processes does. Without a stanza in between, the delivery receipt would be merged into that upsert instead of
   * surfacing as `messages.update`. The server's pre-key count notification (real traffic; Baileys uploads more
   * pre-keys when it is low) is that stanza; the recipient answers later. It is still a race: if the client is slow
   * to queue its upsert (busy saving keys), the receipt status can end up inside the upsert; clients must accept both
   * shapes.
   */
  private acceptSend(c: Connection, state: PhoneState, device: LinkedDevice, to: string, id: string, at: number) {
    this.send(c, { tag: 'ack', attrs: { class: 'message', id, from: to, t: unixSeconds() } });
    this.applyAntiSpam(state, to, at);
    if (c.stage !== 'ready') return false;
    this.later(PREKEY_NOTIFICATION_DELAY_MS, () => {
      this.send(c, {
        tag: 'notification',
        attrs: { from: SERVER_ADDRESS, type: 'encrypt', id: stanzaId(), t: unixSeconds() },
        content: [{ tag: 'count', attrs: { value: String(device.bundle?.preKeys.length ?? 0) } }],
      });
    });
    return this.receipts !== 'none';
  }

  // ------------------------------------------------------------------ groups

  /**
   * `<iq xmlns="w:g2">`: create, metadata (`query`), `participating`, add/remove members, leave. Answered as WhatsApp
   * answers them: a `<group>` node with its members; `error` 404 for a group that does not exist, 403 for one the
   * asker is not in (or, for add/remove, not an admin of).
   */
  private onGroupIq(c: Connection, node: BinaryNode, first: BinaryNode | undefined): void {
    const phone = c.device?.phone;
    const id = node.attrs.id ?? '';
    const to = node.attrs.to ?? '@g.us';
    const reply = (content: BinaryNode[]): void =>
      this.send(c, { tag: 'iq', attrs: { from: to, type: 'result', id }, content });
    const fail = (code: string, text: string): void =>
      this.send(c, {
        tag: 'iq',
        attrs: { from: to, type: 'error', id },
        content: [{ tag: 'error', attrs: { code, text } }],
      });
    if (!phone || !first) return fail('400', 'bad-request');
    const type = node.attrs.type;
    const target = jidDecode(to);
    if (!target?.user) {
      // server-level: create, leave, participating
      if (type === 'set' && first.tag === 'create') {
        const subject = first.attrs.subject?.trim();
        if (!subject) return fail('400', 'bad-request');
        const group = this.createGroup(phone, subject, getBinaryNodeChildren(first, 'participant'), c);
        return reply([groupNode(group)]);
      }
      if (type === 'set' && first.tag === 'leave') {
        const left: BinaryNode[] = [];
        for (const g of getBinaryNodeChildren(first, 'group')) {
          const group = this.groups.get(groupJidOf(g.attrs.id ?? ''));
          if (!group || !group.participants.has(phone)) {
            left.push({ tag: 'group', attrs: { id: g.attrs.id ?? '', error: group ? '403' : '404' } });
            continue;
          }
          this.removeMember(group, phone);
          this.events.emit('group-left', { group: group.jid, phone });
          const self = { tag: 'participant', attrs: memberAttrs(group, phone) };
          this.notifyGroup(group, phone, { tag: 'leave', attrs: {}, content: [self] }, c, [phone]);
          left.push({ tag: 'group', attrs: { id: group.jid } });
        }
        return reply([{ tag: 'leave', attrs: {}, content: left }]);
      }
      if (type === 'get' && first.tag === 'participating') {
        const mine = [...this.groups.values()].filter((g) => g.participants.has(phone));
        return reply([{ tag: 'groups', attrs: {}, content: mine.map(groupNode) }]);
      }
      reply([]);
      return;
    }
    const group = this.groups.get(`${target.user}@g.us`);
    if (!group) return fail('404', 'item-not-found');
    if (!group.participants.has(phone)) return fail('403', 'forbidden');
    if (type === 'get' && first.tag === 'query') return reply([groupNode(group)]);
    if (type === 'set' && (first.tag === 'add' || first.tag === 'remove')) {
      if (!group.participants.get(phone)) return fail('403', 'forbidden');
      const results: BinaryNode[] = [];
      for (const p of getBinaryNodeChildren(first, 'participant')) {
        const jid = p.attrs.jid ?? '';
        const member = jidDecode(pnJidOf(jid))?.user;
        let error: string | undefined;
        if (!member || !/^\d{5,20}$/.test(member)) error = '400';
        else if (first.tag === 'add') {
          if (group.participants.has(member)) error = '409';
          else if (!this.isOnWhatsApp(member)) error = '403';
          else group.participants.set(member, null);
        } else if (!group.participants.has(member)) error = '404';
        else this.removeMember(group, member);
        results.push({ tag: 'participant', attrs: { jid, ...(error ? { error } : {}) } });
        if (error || !member) continue;
        this.events.emit(`group-${first.tag}`, { group: group.jid, phone: member, by: phone });
        const who = { tag: 'participant', attrs: memberAttrs(group, member) };
        // a removed member is told too
        this.notifyGroup(group, phone, { tag: first.tag, attrs: {}, content: [who] }, c, [member]);
      }
      return reply([{ tag: first.tag, attrs: {}, content: results }]);
    }
    // settings the simulator does not model (subject, description, invite links…): accepted, nothing changes
    reply([]);
  }

  private createGroup(
    creator: string,
    subject: string,
    invited: BinaryNode[],
    exclude?: Connection,
    addressingMode: 'pn' | 'lid' = 'pn',
  ): GroupState {
    let id: string;
    do id = `120363${randomInt(0, 1e12).toString().padStart(12, '0')}`;
    while (this.groups.has(`${id}@g.us`));
    const now = Math.floor(Date.now() / 1000);
    const group: GroupState = {
      id,
      jid: `${id}@g.us`,
      subject,
      addressingMode,
      creator,
      creation: now,
      subjectTime: now,
      participants: new Map([[creator, 'superadmin']]),
      formerParticipants: [],
      messages: [],
      senderKeysSent: new Set(),
    };
    for (const p of invited) {
      const member = jidDecode(pnJidOf(p.attrs.jid ?? ''))?.user;
      // like WhatsApp, a number that is not on WhatsApp is left out of the new group
      if (member && /^\d{5,20}$/.test(member) && this.isOnWhatsApp(member) && !group.participants.has(member))
        group.participants.set(member, null);
    }
    this.groups.set(group.jid, group);
    this.events.emit('group-created', { group: group.jid, creator, participants: [...group.participants.keys()] });
    this.notifyGroup(group, creator, { tag: 'create', attrs: {}, content: [groupNode(group)] }, exclude);
    return group;
  }

  /**
   * A simulated contact (`creator`, phone number) creates a group with these members (phone numbers, the session's
   * among them): WhatsApp tells the members' connected sessions with a `w:gp2` notification (`<create>`).
   */
  createGroupBy(
    creator: string,
    subject: string,
    members: string[],
    addressingMode: 'pn' | 'lid' = 'pn',
  ): GroupSummary {
    const invited = members.map((m) => ({ tag: 'participant', attrs: { jid: `${m}@${SERVER_JID}` } }));
    return groupSummary(this.createGroup(creator, subject, invited, undefined, addressingMode));
  }

  /**
   * `<notification type="w:gp2" from=group participant=actor>` with the change (`create`, `add`, `remove`,
   * `leave`) to the connected sessions of the members, except the connection that made the change (it has the
   * answer to its query).
   */
  private notifyGroup(group: GroupState, actor: string, change: BinaryNode, exclude?: Connection, also: string[] = []) {
    for (const member of new Set([...group.participants.keys(), ...also]))
      for (const c of this.liveConnections(member)) {
        if (c === exclude) continue;
        this.send(c, {
          tag: 'notification',
          attrs: {
            from: group.jid,
            type: 'w:gp2',
            id: stanzaId(),
            t: unixSeconds(),
            ...actorAttrs(group, actor),
          },
          content: [change],
        });
      }
  }

  private removeMember(group: GroupState, phone: string): void {
    group.participants.delete(phone);
    group.formerParticipants.push(phone);
    // a member who comes back gets the sender keys again
    for (const k of [...group.senderKeysSent]) if (k.startsWith(`${phone}@`)) group.senderKeysSent.delete(k);
  }

  /**
   * A message from a session to a group: one `skmsg` (the sender key's ciphertext) plus, for the member devices that
   * do not have the sender key yet, a per-device `pkmsg`/`msg` carrying the SenderKeyDistributionMessage. Every
   * member's device takes in the distribution and decrypts the `skmsg` with the sender key, as a real recipient
   * does: what each member got is recorded decrypted. Then the ack and a delivery receipt per member.
   */
  private async onGroupMessage(c: Connection, state: PhoneState, node: BinaryNode): Promise<void> {
    const device = c.device!;
    const id = node.attrs.id!;
    const to = node.attrs.to!;
    const at = Date.now();
    const refusal = state.pendingRetries.has(id) ? undefined : this.coldOutreachError(state, node, at);
    if (refusal === '479') {
      state.rejected479++;
      this.logger.info({ phone: device.phone, to, id, error: refusal }, 'group message refused: no privacy token');
      this.events.emit('rejected', { phone: device.phone, to, id, error: 479 });
      this.send(c, { tag: 'ack', attrs: { class: 'message', id, from: to, t: unixSeconds(), error: refusal } });
      return;
    }
    const group = this.groups.get(to);
    if (!group?.participants.has(device.phone)) {
      this.send(c, {
        tag: 'ack',
        attrs: { class: 'message', id, from: to, t: unixSeconds(), error: group ? '403' : '404' },
      });
      return;
    }
    // the sender key is the sending device's, under the address the group uses (LID or phone number)
    const author = node.attrs.addressing_mode === 'lid' ? device.lid : device.jid;
    for (const { participantJid, type, content } of this.contactCopies(node)) {
      try {
        const contact = this.contact(participantJid);
        const message = await contact.decrypt(device.jid, type, content);
        const skdm = message.senderKeyDistributionMessage;
        if (skdm?.axolotlSenderKeyDistributionMessage)
          await contact.processSenderKey(author, skdm.groupId ?? to, skdm.axolotlSenderKeyDistributionMessage);
      } catch (error) {
        this.logger.warn({ err: error, participantJid }, 'could not take in a sender key from the session');
      }
    }
    const skmsg = getBinaryNodeChildren(node, 'enc').find((e) => e.attrs.type === 'skmsg')?.content;
    const received: GroupReceipt[] = [];
    for (const member of group.participants.keys()) {
      if (member === device.phone) continue;
      try {
        if (!(skmsg instanceof Uint8Array)) throw new Error('group message without skmsg');
        const message = await this.contact(`${member}@${SERVER_JID}`).decryptGroup(to, author, skmsg);
        const media = this.media.open(message) ?? undefined;
        const details = messageDetails(message);
        received.push({
          participant: member,
          decrypted: true,
          text: messageText(message) ?? media?.caption ?? '',
          ...(media ? { media } : {}),
          ...(Object.keys(details).length > 0 ? { details } : {}),
        });
      } catch (error) {
        this.logger.warn({ err: error, member, group: to }, 'a group member could not decrypt a message');
        received.push({ participant: member, decrypted: false, text: '' });
      }
    }
    const first = received.find((r) => r.decrypted);
    group.messages.push({ id, from: device.phone, direction: 'outbound', text: first?.text ?? '', at, received });
    const recorded: RecordedMessage = {
      id,
      phone: device.phone,
      to,
      text: first?.text ?? '',
      at,
      sourceAddress: c.address,
      ...(first?.media ? { media: first.media } : {}),
      ...first?.details,
    };
    this.messageLog.push(recorded);
    state.messagesSent++;
    this.events.emit('message', { ...recorded });
    this.events.emit('group-message', { group: to, id, from: device.phone, received });
    if (!this.acceptSend(c, state, device, to, id, at)) return;
    this.later(PREKEY_NOTIFICATION_DELAY_MS + this.receiptDelayMs, () => {
      for (const r of received.filter((x) => x.decrypted))
        this.send(c, {
          tag: 'receipt',
          attrs: { id, from: to, participant: `${r.participant}@${SERVER_JID}`, t: unixSeconds() },
        });
    });
  }

  /**
   * Member `from` (a simulated contact, phone number) writes `text` into group `groupJid`. Every simulated phone in
   * the group with a connected session gets it as WhatsApp delivers it: `<message from=group participant=member>`
   * with the member's sender key distribution (a `pkmsg`/`msg` for the session's device) first when that device does
   * not have it yet, then the `skmsg`. Returns the message id and the phones it reached.
   */
  async sendInboundGroup(groupJid: string, from: string, text: string): Promise<{ id: string; deliveredTo: string[] }> {
    return this.sendInboundGroupMessage(groupJid, from, { conversation: text });
  }

  /** Member `from` sends `message` (a text, a reaction, an edit, a delete) into the group, as sendInboundGroup. */
  private async sendInboundGroupMessage(
    groupJid: string,
    from: string,
    message: proto.IMessage,
  ): Promise<{ id: string; deliveredTo: string[] }> {
    const text = messageText(message) ?? '';
    const details = messageDetails(message);
    const group = this.groups.get(groupJidOf(groupJid));
    if (!group) throw new Error(`no group ${groupJid}`);
    const sender = jidDecode(from.includes('@') ? from : `${from}@${SERVER_JID}`)?.user ?? from;
    if (!group.participants.has(sender)) throw new Error(`${sender} is not a member of ${group.jid}`);
    const fromJid = `${sender}@${SERVER_JID}`;
    const contact = this.contact(fromJid);
    const id = stanzaId();
    const deliveredTo: string[] = [];
    for (const member of group.participants.keys()) {
      if (member === sender) continue;
      for (const c of this.liveConnections(member)) {
        const device = c.device;
        if (!device?.bundle) continue;
        // one encryption per copy: each advances the member's sender key chain, which the receiver follows
        const { ciphertext, senderKeyDistributionMessage } = await contact.encryptGroup(group.jid, message);
        const content: BinaryNode[] = [];
        const sentKey = `${fromJid}|${device.jid}`;
        if (!group.senderKeysSent.has(sentKey)) {
          const skdm = await contact.encryptTo(device.jid, device.bundle, {
            senderKeyDistributionMessage: {
              groupId: group.jid,
              axolotlSenderKeyDistributionMessage: senderKeyDistributionMessage,
            },
          });
          content.push({ tag: 'enc', attrs: { v: '2', type: skdm.type }, content: skdm.ciphertext });
          group.senderKeysSent.add(sentKey);
        }
        content.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: ciphertext });
        this.send(c, {
          tag: 'message',
          attrs: {
            from: group.jid,
            type: details.kind === 'reaction' ? 'reaction' : 'text',
            id,
            t: unixSeconds(),
            notify: 'Simulated contact',
            ...actorAttrs(group, sender),
          },
          content,
        });
        if (!deliveredTo.includes(member)) deliveredTo.push(member);
      }
    }
    group.messages.push({
      id,
      from: sender,
      direction: 'inbound',
      text,
      at: Date.now(),
      received: [],
      ...(details.kind ? { details } : {}),
    });
    this.events.emit('group-inbound', { group: group.jid, from: sender, id, text, deliveredTo });
    return { id, deliveredTo };
  }

  /** The groups (all, or those `phone` is or was in), with their members and messages. */
  groupList(phone?: string): GroupSummary[] {
    return [...this.groups.values()]
      .filter((g) => phone === undefined || g.participants.has(phone) || g.formerParticipants.includes(phone))
      .map(groupSummary);
  }

  group(jid: string): GroupSummary | undefined {
    const group = this.groups.get(groupJidOf(jid));
    return group && groupSummary(group);
  }

  // ------------------------------------------------------------------ inbound, bans

  /** Encrypts `message` from `fromJid` to the connection's device and pushes it as a `<message>`. */
  private async deliverFrom(
    c: Connection,
    fromJid: string,
    message: proto.IMessage,
    extraAttrs: Record<string, string>,
    encAttrs: Record<string, string> = {},
  ): Promise<string> {
    const device = c.device;
    if (!device?.bundle) throw new Error('the session has not uploaded its pre-keys yet');
    const { type, ciphertext } = await this.contact(fromJid).encryptTo(device.jid, device.bundle, message);
    const id = stanzaId();
    this.send(c, {
      tag: 'message',
      attrs: { from: fromJid, type: 'text', id, t: unixSeconds(), ...extraAttrs },
      content: [{ tag: 'enc', attrs: { v: '2', type, ...encAttrs }, content: ciphertext }],
    });
    return id;
  }

  /**
   * The privacy-token gate: '463' (1:1) or '479' (group) when a young phone writes first to a user without a valid
   * `tctoken` issued by that user to this phone (a forged token, or one another contact or another number got, is
   * refused like none); 'token' when a valid token let it through; undefined when the gate does not apply. A chat
   * the phone already had (an accepted message to that user) needs no token.
   */
  private coldOutreachError(state: PhoneState, node: BinaryNode, at: number): '463' | '479' | 'token' | undefined {
    const rule = this.coldOutreach;
    if (!rule || state.firstLinkedAt === null || at - state.firstLinkedAt >= rule.youngForMs) return undefined;
    const to = jidDecode(node.attrs.to);
    if (!to?.user) return undefined;
    if (to.server === 'g.us') return '479';
    if (to.server !== SERVER_JID && to.server !== 'lid') return undefined;
    const recipient = to.server === 'lid' ? phoneForLid(to.user) : to.user;
    if (recipient === state.phone) return undefined;
    const chatExists = this.messageLog.some(
      (m) => m.phone === state.phone && jidDecode(pnJidOf(m.to))?.user === recipient,
    );
    if (chatExists) return undefined;
    const token = getBinaryNodeChild(node, 'tctoken')?.content;
    if (token instanceof Uint8Array && privacyTokenValid(token, recipient, state.phone, at)) return 'token';
    return '463';
  }

  /** `<receipt type="retry">` from the recipient device, with its registration id and a fresh key bundle. */
  private async sendRetryReceipt(
    c: Connection,
    state: PhoneState,
    from: string,
    id: string,
    count: number,
  ): Promise<void> {
    if (this.holdRetryReceipts || c.stage === 'closed' || c.ws.readyState !== c.ws.OPEN) {
      state.queuedRetryReceipts.push({ from, id, count });
      return;
    }
    const bundle = await this.contact(from).bundleNode(from);
    const parts = Array.isArray(bundle.content) ? bundle.content : [];
    const registration = parts.find((n) => n.tag === 'registration');
    if (!registration) throw new Error('bundle without registration');
    state.retryReceiptsSent++;
    this.events.emit('retry-receipt', { phone: state.phone, from, id, count });
    this.send(c, {
      tag: 'receipt',
      attrs: { id, from, type: 'retry', t: unixSeconds() },
      content: [
        { tag: 'retry', attrs: { count: String(count), id, t: unixSeconds(), v: '1' } },
        registration,
        { tag: 'keys', attrs: {}, content: parts.filter((n) => n.tag !== 'registration') },
      ],
    });
  }

  private applyAntiSpam(state: PhoneState, to: string, at: number): void {
    const rules = this.antiSpam;
    if (!rules || state.banned) return;
    state.recentSends = state.recentSends.filter((t) => at - t < rules.rateWindowMs);
    state.recentSends.push(at);
    if (!state.recipientsFirstSeen.has(to)) state.recipientsFirstSeen.set(to, at);
    if (state.recentSends.length > rules.maxPerMinute) {
      this.ban(state, `more than ${rules.maxPerMinute} messages in ${rules.rateWindowMs / 1000} s`);
      return;
    }
    const young = state.firstLinkedAt !== null && at - state.firstLinkedAt < rules.youngForMs;
    if (young) {
      const newRecipients = [...state.recipientsFirstSeen.values()].filter((t) => at - t < HOUR_MS).length;
      if (newRecipients > rules.maxNewContactsPerHourYoung) {
        this.ban(state, `more than ${rules.maxNewContactsPerHourYoung} new contacts in an hour from a young number`);
      }
    }
  }

  /** WhatsApp's codes: a permanent ban is 406; a temporary one is 402 with its end (`expire`, unix seconds). */
  private ban(state: PhoneState, reason: string, until: number | null = null): void {
    if (state.banned) return;
    state.banned = true;
    state.bannedUntil = until;
    this.logger.info({ phone: state.phone, reason, until }, 'phone banned');
    for (const c of this.liveConnections(state.phone))
      this.closeWith(c, { tag: 'stream:error', attrs: banAttrs(state) });
    this.events.emit('banned', { phone: state.phone, reason, ...(until ? { until } : {}) });
  }
}

/** The stream error / login failure attributes of a ban: 406 permanent, 402 temporary with its end. */
function banAttrs(state: PhoneState): Record<string, string> {
  return state.bannedUntil === null
    ? { code: '406' }
    : { code: '402', expire: String(Math.ceil(state.bannedUntil / 1000)) };
}

/** Parses `<iq xmlns="encrypt" type="set">`: registration id, identity, signed pre-key and one-time pre-keys. */
function parseUploadedBundle(node: BinaryNode): CompanionBundle {
  const bytes = (parent: BinaryNode | undefined, tag: string): Buffer => {
    const content = getBinaryNodeChild(parent, tag)?.content;
    if (!(content instanceof Uint8Array)) throw new Error(`pre-key upload without <${tag}>`);
    return Buffer.from(content);
  };
  const signedPreKey = getBinaryNodeChild(node, 'skey');
  return {
    registrationId: bytes(node, 'registration').readUInt32BE(0),
    identity: bytes(node, 'identity'),
    signedPreKey: {
      id: bytes(signedPreKey, 'id').readUIntBE(0, 3),
      value: bytes(signedPreKey, 'value'),
      signature: bytes(signedPreKey, 'signature'),
    },
    preKeys: getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key').map((key) => ({
      id: bytes(key, 'id').readUIntBE(0, 3),
      value: bytes(key, 'value'),
    })),
  };
}

/**
 * A certificate chain under the simulator's own root: intermediate signed by the root, leaf (the server's
 * static key) signed by the intermediate. Baileys 7.x verifies both signatures and the root's serial 0.
 */
function buildCertificateChain(root: KeyPair, serverStaticPublic: Uint8Array): Uint8Array {
  const intermediate = Curve.generateKeyPair();
  const Details = proto.CertChain.NoiseCertificate.Details;
  const intermediateDetails = Details.encode({
    serial: 1,
    issuerSerial: 0,
    key: intermediate.public,
    notBefore: 0,
    notAfter: 0,
  }).finish();
  const leafDetails = Details.encode({
    serial: 2,
    issuerSerial: 1,
    key: serverStaticPublic,
    notBefore: 0,
    notAfter: 0,
  }).finish();
  return proto.CertChain.encode({
    leaf: { details: leafDetails, signature: Curve.sign(intermediate.private, leafDetails) as Uint8Array },
    intermediate: {
      details: intermediateDetails,
      signature: Curve.sign(root.private, intermediateDetails) as Uint8Array,
    },
  }).finish();
}

/** A stable fake LID user per phone number. */
export function lidUserFor(phone: string): string {
  return `9${phone.padStart(14, '0')}`;
}

/** The phone number behind a simulated LID user (inverse of lidUserFor). */
/** The digits of a usync `<contact>` element's phone number (`+15551234567`), if it carries one. */
function contactNumberOf(node: BinaryNode | undefined): string | undefined {
  const raw = node?.content;
  const text = typeof raw === 'string' ? raw : raw instanceof Uint8Array ? Buffer.from(raw).toString('utf8') : '';
  const digits = text.replace(/^\+/, '');
  return /^\d{5,20}$/.test(digits) ? digits : undefined;
}

export function phoneForLid(lidUser: string): string {
  return lidUser.slice(1).replace(/^0+/, '');
}

/** `<lid>[:device]@lid` → `<phone>[:device]@s.whatsapp.net`; other jids unchanged. */
export function pnJidOf(jid: string): string {
  const decoded = jidDecode(jid);
  if (!decoded || decoded.server !== 'lid') return jid;
  const device = decoded.device ? `:${decoded.device}` : '';
  return `${phoneForLid(decoded.user)}${device}@${SERVER_JID}`;
}

/** A trusted-contact token `issuer` grants `recipient` (phone numbers): version, issue time, MAC over both. */
function privacyToken(issuer: string, recipient: string, t: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(PRIVACY_TOKEN_VERSION, 0);
  head.writeUInt32BE(t, 1);
  const mac = createHmac('sha256', PRIVACY_TOKEN_KEY).update(head).update(`${issuer}>${recipient}`).digest();
  return Buffer.concat([head, mac.subarray(0, 16)]);
}

/** True when `token` is one the server issued from `issuer` to `recipient`, and not expired at `at` (ms). */
function privacyTokenValid(token: Uint8Array, issuer: string, recipient: string, at: number): boolean {
  const bytes = Buffer.from(token);
  if (bytes.length !== 21 || bytes.readUInt8(0) !== PRIVACY_TOKEN_VERSION) return false;
  const t = bytes.readUInt32BE(1);
  const now = Math.floor(at / 1000);
  if (t > now + 300 || now - t > PRIVACY_TOKEN_TTL_S) return false;
  return timingSafeEqual(bytes, privacyToken(issuer, recipient, t));
}

/** `<id>` or `<id>@g.us` → `<id>@g.us`. */
function groupJidOf(id: string): string {
  return id.endsWith('@g.us') ? id : `${id}@g.us`;
}

/** A member's address in the group: its phone number's JID, or in a LID group its LID with the number alongside. */
function memberAttrs(g: GroupState, phone: string): Record<string, string> {
  const pn = `${phone}@${SERVER_JID}`;
  return g.addressingMode === 'lid' ? { jid: `${lidUserFor(phone)}@lid`, phone_number: pn } : { jid: pn };
}

/** Who acted or wrote, on a notification or message from the group (`participant`, `addressing_mode`). */
function actorAttrs(g: GroupState, phone: string): Record<string, string> {
  const pn = `${phone}@${SERVER_JID}`;
  return g.addressingMode === 'lid'
    ? { participant: `${lidUserFor(phone)}@lid`, participant_pn: pn, addressing_mode: 'lid' }
    : { participant: pn, addressing_mode: 'pn' };
}

/** A group as WhatsApp describes it in `w:g2` answers: attributes and its members. */
function groupNode(g: GroupState): BinaryNode {
  const creator = memberAttrs(g, g.creator);
  return {
    tag: 'group',
    attrs: {
      id: g.id,
      subject: g.subject,
      s_o: creator.jid!,
      s_t: String(g.subjectTime),
      creator: creator.jid!,
      ...(creator.phone_number ? { creator_pn: creator.phone_number, s_o_pn: creator.phone_number } : {}),
      creation: String(g.creation),
      size: String(g.participants.size),
      ...(g.addressingMode === 'lid' ? { addressing_mode: 'lid' } : {}),
    },
    content: [...g.participants].map(([phone, admin]) => ({
      tag: 'participant',
      attrs: { ...memberAttrs(g, phone), ...(admin ? { type: admin } : {}) },
    })),
  };
}

function groupSummary(g: GroupState): GroupSummary {
  return {
    jid: g.jid,
    subject: g.subject,
    addressingMode: g.addressingMode,
    creator: g.creator,
    creation: g.creation,
    participants: [...g.participants].map(([phone, admin]) => ({ phone, admin })),
    formerParticipants: [...g.formerParticipants],
    messages: g.messages.map((m) => ({ ...m, received: m.received.map((r) => ({ ...r })) })),
  };
}
