/**
 * The only module that talks to Baileys (7.0.0-rc14; the next major is one module's change): socket creation,
 * the events the worker uses (connection, inbound text, delivery statuses, creds), sending, presence, logout, and
 * the library's auth-state helpers. Everything else in wa-worker/ sees the small `EngineSocket` below.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import makeWASocket, {
  Browsers,
  BufferJSON,
  DEFAULT_CONNECTION_CONFIG,
  initAuthCreds,
  jidDecode,
  jidNormalizedUser,
  DEFAULT_ORIGIN,
  generateOrGetPreKeys,
  getMediaKeys,
  INITIAL_PREKEY_COUNT,
  makeCacheableSignalKeyStore,
  normalizeMessageContent,
  proto,
  toNumber,
  USyncQuery,
  USyncUser,
  WA_CERT_DETAILS,
  type AnyMessageContent,
  type AuthenticationCreds,
  type AuthenticationState,
  type GroupMetadata,
  type SignalDataSet,
  type SignalDataTypeMap,
  type WAMessage,
  type WASocket,
} from '@whiskeysockets/baileys';
import type { Agent } from 'node:https';
import { MIME_TYPE_RE } from '../common/media.js';
import type { OutboxAction, OutboxQuoted, WaKey } from '../common/message-actions.js';
import type { GroupInfo, GroupParticipantResult } from '../common/worker-commands.js';
import { decryptMediaTo, httpsGet, MediaDownloadError } from './media-download.js';

export { BufferJSON, initAuthCreds };
export type { AuthenticationCreds, AuthenticationState, SignalDataSet, SignalDataTypeMap };

/** The library and its version (logged at start, reported in health). */
export const ENGINE_NAME = '@whiskeysockets/baileys';
export const ENGINE_VERSION: string = (() => {
  try {
    const require = createRequire(import.meta.url);
    const pkgPath = require.resolve(`${ENGINE_NAME}/package.json`);
    return (JSON.parse(fs.readFileSync(pkgPath, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/**
 * The auth state behind Baileys' key cache, one per worker (not per socket): what one socket wrote or read, the next
 * one reads from memory — the first login's pre-keys stored ahead among them.
 */
export function withKeyCache(auth: AuthenticationState, logger: EngineOptions['logger']): AuthenticationState {
  return { creds: auth.creds, keys: makeCacheableSignalKeyStore(auth.keys, logger) };
}

/**
 * Stores the pre-keys a new device's first login uploads (INITIAL_PREKEY_COUNT) ahead of that login, with Baileys'
 * own generator and counters: the login then finds them and only reads and uploads them, instead of generating and
 * writing 812 keys between the scan and `open`. Keys first, creds after, so a crash in between only loses keys that
 * are generated again. Returns how many were generated (0: linked already, or stored before).
 */
export async function storeInitialPreKeys(auth: AuthenticationState, saveCreds: () => Promise<void>): Promise<number> {
  const { creds } = auth;
  if (creds.me) return 0;
  const { newPreKeys, lastPreKeyId } = generateOrGetPreKeys(creds, INITIAL_PREKEY_COUNT);
  const generated = Object.keys(newPreKeys).length;
  if (generated === 0) return 0;
  await auth.keys.set({ 'pre-key': newPreKeys });
  creds.nextPreKeyId = Math.max(lastPreKeyId + 1, creds.nextPreKeyId);
  await saveCreds();
  return generated;
}

/** Key types whose stored value is a protobuf object (revived from JSON on read). */
export function reviveKey(type: string, value: unknown): unknown {
  if (type === 'app-state-sync-key' && value) return proto.Message.AppStateSyncKeyData.fromObject(value as object);
  return value;
}

/**
 * Trust another certificate root for the server's Noise certificate chain (7.x verifies it against WhatsApp's
 * root). Only for the simulator, which publishes its root key; never set in production.
 */
export function trustCertificateRoot(publicKey: Uint8Array): void {
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(publicKey);
}

export type MessageStatus = 'delivered' | 'read' | 'failed';

/** Server error codes in a message ack that mean "refused: no privacy token" (1:1 463, group 479). */
export const COLD_OUTREACH_ERRORS = new Set(['463', '479']);

/** The server refused a sent message with an error ack (`<ack class="message" error="…">`): it was not delivered. */
export class MessageRejectedError extends Error {
  constructor(
    readonly code: string,
    readonly waMessageId: string,
  ) {
    super(`WhatsApp refused the message with error ${code}`);
  }
  /** 463/479: a young number's cold 1:1 (or group) message without a privacy token. */
  get coldOutreach(): boolean {
    return COLD_OUTREACH_ERRORS.has(this.code);
  }
}

/** How long a send waits for the server's ack before it counts as sent (WhatsApp acks within a round trip). */
export const SERVER_ACK_TIMEOUT_MS = 5_000;

export interface InboundText {
  waMessageId: string;
  /** the sender's phone number when known, else its LID jid (`<lid>@lid`) */
  from: string;
  /** the sender's phone number: from the address itself, the message's alternate address or the LID mapping */
  fromPhone: string | null;
  /** the sender's LID user when known */
  fromLid: string | null;
  /** the chat's JID (where a read receipt goes): the contact's, or the group's */
  chat: string;
  /** a group message: the group's JID (`from` is then the member who wrote) */
  group?: string;
  /** the text, or a media message's caption ('' without one) */
  text: string;
  timestamp: number;
  /** the file a media message announces (downloaded with downloadMedia) */
  media?: InboundMedia;
}

/** A contact reacted to, edited or deleted for everyone a message of a chat this session is in. */
export interface InboundAction extends Pick<InboundText, 'from' | 'fromPhone' | 'fromLid' | 'chat' | 'group'> {
  kind: 'reaction' | 'edit' | 'revoke';
  /** the id of the reaction / protocol message itself */
  waMessageId: string;
  targetId: string;
  targetFromMe: boolean;
  emoji?: string;
  text?: string;
  timestamp: number;
}

/** Baileys' message key of a descriptor's key. */
function baileysKey(k: WaKey) {
  return {
    id: k.id,
    remoteJid: k.remoteJid,
    fromMe: k.fromMe,
    ...(k.participant ? { participant: k.participant } : {}),
  };
}

/** Baileys' `quoted` option: the key and the quoted text as WhatsApp shows it in the reply. */
function quotedOption(q: OutboxQuoted | undefined) {
  return q ? { quoted: { key: baileysKey(q.key), message: { conversation: q.text } } } : {};
}

function actionContent(a: OutboxAction, text: string): AnyMessageContent {
  switch (a.kind) {
    case 'reaction':
      return { react: { text: a.emoji, key: baileysKey(a.key) } };
    case 'location':
      return {
        location: {
          degreesLatitude: a.latitude,
          degreesLongitude: a.longitude,
          ...(a.name ? { name: a.name } : {}),
          ...(a.address ? { address: a.address } : {}),
        },
      };
    case 'contact':
      return {
        contacts: {
          ...(a.contacts.length > 1 ? { displayName: `${a.contacts.length} contacts` } : {}),
          contacts: a.contacts.map((c) => ({
            ...(c.displayName ? { displayName: c.displayName } : {}),
            vcard: c.vcard,
          })),
        },
      };
    case 'edit':
      return { text, edit: baileysKey(a.key) };
    case 'revoke':
      return { delete: baileysKey(a.key) };
  }
}

export const INBOUND_MEDIA_TYPES = ['image', 'video', 'audio', 'voice', 'document', 'sticker'] as const;

/** A media message's file as the message announces it: where it is, its keys and hashes. */
export interface InboundMedia {
  type: (typeof INBOUND_MEDIA_TYPES)[number];
  mimetype: string;
  caption: string | null;
  fileName: string | null;
  /** plaintext length the message announces (null: not announced) */
  fileLength: number | null;
  directPath: string;
  mediaKey: Uint8Array;
  fileEncSha256: Uint8Array;
  fileSha256: Uint8Array;
}

/** The media fields of a message (after unwrapping ephemeral / caption wrappers), in the order WhatsApp uses. */
const MEDIA_FIELDS = [
  ['imageMessage', 'image'],
  ['videoMessage', 'video'],
  ['audioMessage', 'audio'],
  ['documentMessage', 'document'],
  ['stickerMessage', 'sticker'],
] as const;

function mediaOf(msg: proto.IMessage | null | undefined): InboundMedia | undefined {
  const content = normalizeMessageContent(msg);
  if (!content) return undefined;
  for (const [field, kind] of MEDIA_FIELDS) {
    const m = content[field] as
      (proto.Message.IImageMessage & proto.Message.IDocumentMessage & proto.Message.IAudioMessage) | null | undefined;
    if (!m) continue;
    if (!m.directPath || !m.mediaKey || !m.fileEncSha256 || !m.fileSha256) return undefined;
    return {
      type: kind === 'audio' && m.ptt ? 'voice' : kind,
      // the sender's claim: kept only when it is a plain MIME type (it becomes a Content-Type header downstream)
      mimetype:
        m.mimetype && m.mimetype.length <= 255 && MIME_TYPE_RE.test(m.mimetype)
          ? m.mimetype
          : 'application/octet-stream',
      caption: m.caption || null,
      fileName: field === 'documentMessage' ? m.fileName || null : null,
      fileLength: m.fileLength === null || m.fileLength === undefined ? null : toNumber(m.fileLength),
      directPath: m.directPath,
      mediaKey: m.mediaKey,
      fileEncSha256: m.fileEncSha256,
      fileSha256: m.fileSha256,
    };
  }
  return undefined;
}

/** A media file to send: the file on local disk and how WhatsApp should show it. */
export interface EngineMedia {
  type: 'image' | 'document' | 'audio' | 'voice' | 'video' | 'sticker';
  filePath: string;
  mimeType: string;
  caption?: string;
  fileName?: string;
}

function mediaContent(m: EngineMedia): AnyMessageContent {
  const file = { url: m.filePath };
  const caption = m.caption ? { caption: m.caption } : {};
  switch (m.type) {
    case 'image':
      return { image: file, mimetype: m.mimeType, ...caption };
    case 'video':
      return { video: file, mimetype: m.mimeType, ...caption };
    case 'document':
      return { document: file, mimetype: m.mimeType, fileName: m.fileName ?? 'file', ...caption };
    case 'audio':
      return { audio: file, mimetype: m.mimeType };
    case 'voice':
      return { audio: file, mimetype: 'audio/ogg; codecs=opus', ptt: true };
    case 'sticker':
      return { sticker: file, mimetype: m.mimeType };
  }
}

export interface ConnectionUpdate {
  qr?: string;
  isNewLogin?: boolean;
  connection?: 'open' | 'close' | 'connecting';
  error?: unknown;
}

export interface EngineOptions {
  waWebSocketUrl?: string;
  agent: Agent;
  /** The worker's auth state behind its key cache (withKeyCache). */
  auth: AuthenticationState;
  logger: Parameters<typeof makeWASocket>[0]['logger'];
  connectTimeoutMs: number;
  keepAliveIntervalMs: number;
  defaultQueryTimeoutMs: number;
  /** WhatsApp Web version to announce; the engine's pinned default when absent. */
  version?: [number, number, number];
  /** How long each QR is shown before the next one (Baileys' default when unset). */
  qrTimeout?: number;
  /** Text of a message this session sent (the sent-message store): lets a retry receipt re-send it. */
  sentText?: (waMessageId: string) => string | undefined;
  /** The device/browser identity the client presents: [os, browser, os version] (Baileys' `browser`). */
  browser?: [string, string, string];
}

/** The WhatsApp Web version the engine announces unless told otherwise. */
export const DEFAULT_WA_VERSION: [number, number, number] = [...DEFAULT_CONNECTION_CONFIG.version] as [
  number,
  number,
  number,
];

export interface EngineSocket {
  readonly userJid: string | undefined;
  /** True once the account's push name is known (presence is only sent after that). */
  readonly hasPushName: boolean;
  onConnectionUpdate(handler: (u: ConnectionUpdate) => void): void;
  onCredsUpdate(handler: () => void): void;
  /** Inbound texts and media messages (a media message's text is its caption). */
  onInboundText(handler: (m: InboundText) => void): void;
  /**
   * Downloads an inbound media file from the media host `media_conn` names, through the session's proxy (as the
   * uploads go), decrypting and checking it on the way into `file`; refuses more than `maxBytes`. Throws
   * MediaDownloadError.
   */
  downloadMedia(
    media: InboundMedia,
    file: string,
    opts: { maxBytes: number; timeoutMs: number },
  ): Promise<{ size: number; sha256: string }>;
  onOwnMessageStatus(handler: (waMessageId: string, status: MessageStatus) => void): void;
  /**
   * Sends a text; resolves with the WhatsApp message id once the server acked it (or SERVER_ACK_TIMEOUT_MS passed),
   * rejects with MessageRejectedError when the server's ack carries an error (463/479 and the like).
   */
  sendText(
    jid: string,
    text: string,
    opts?: { messageId?: string; ephemeralExpiration?: number; quoted?: OutboxQuoted },
  ): Promise<string>;
  /**
   * Sends a media file: Baileys encrypts it, uploads it through the session's proxy to the media host
   * `media_conn` named, and sends the message; resolves / rejects like sendText.
   */
  sendMedia(jid: string, media: EngineMedia, opts?: { messageId?: string; quoted?: OutboxQuoted }): Promise<string>;
  /**
   * Sends a reaction, location, contact card(s), an edit (`text` is the new text) or a revoke; resolves / rejects
   * like sendText.
   */
  sendAction(
    jid: string,
    action: OutboxAction,
    text: string,
    opts?: { messageId?: string; quoted?: OutboxQuoted },
  ): Promise<string>;
  /** Inbound reactions, edits and revokes of contacts. */
  onInboundAction(handler: (a: InboundAction) => void): void;
  sendPresenceAvailable(): Promise<void>;
  /**
   * Link by pairing code instead of a QR (7.x `requestPairingCode`: the `link_code_companion_reg` companion_hello
   * stanza); resolves with the 8-character code the user types on the phone `phone` (digits, country code first).
   */
  requestPairingCode(phone: string): Promise<string>;
  /**
   * Which numbers are on WhatsApp: one usync query (contact + LID protocols), as the phone app asks. A number the
   * server answers `out` for, or does not mention, is not on WhatsApp.
   */
  checkNumbers(phones: string[]): Promise<Array<{ phone: string; exists: boolean; jid?: string; lid?: string }>>;
  /** Read receipts for inbound messages (`<receipt type="read">`, or `read-self` when the account hides them). */
  readMessages(messages: Array<{ id: string; chat: string; participant?: string }>): Promise<void>;
  /** The groups the account is in (`w:g2` participating). */
  groupList(): Promise<GroupInfo[]>;
  /** One group's metadata and members (`w:g2` query); rejects with WhatsApp's code (404, 403…) in `errorCode`. */
  groupInfo(jid: string): Promise<GroupInfo>;
  groupCreate(subject: string, phones: string[]): Promise<GroupInfo>;
  groupParticipants(jid: string, phones: string[], change: 'add' | 'remove'): Promise<GroupParticipantResult[]>;
  groupLeave(jid: string): Promise<void>;
  /** Chat state towards one contact: `composing` (typing), `recording` (voice), `paused` (stopped typing). */
  sendChatState(jid: string, state: 'composing' | 'recording' | 'paused'): Promise<void>;
  logout(): Promise<void>;
  end(err?: Error): void;
}

export function userOf(jid: string): string {
  return jidDecode(jid)?.user ?? jid;
}

export function normalizeJid(jid: string): string {
  return jidNormalizedUser(jid);
}

function textOf(msg: proto.IMessage | null | undefined): string | undefined {
  const t =
    msg?.conversation ??
    msg?.extendedTextMessage?.text ??
    msg?.ephemeralMessage?.message?.conversation ??
    msg?.ephemeralMessage?.message?.extendedTextMessage?.text;
  return typeof t === 'string' ? t : undefined;
}

function statusOf(status: number | null | undefined): MessageStatus | undefined {
  const S = proto.WebMessageInfo.Status;
  if (status === S.DELIVERY_ACK) return 'delivered';
  if (status === S.READ || status === S.PLAYED) return 'read';
  if (status === S.ERROR) return 'failed';
  return undefined;
}

/** WhatsApp's error code of a refused query (Baileys puts it in the Boom's `data`), if any. */
export function waErrorCode(err: unknown): number | undefined {
  const data = (err as { data?: unknown } | null)?.data;
  return typeof data === 'number' && Number.isInteger(data) ? data : undefined;
}

function groupInfoOf(m: GroupMetadata): GroupInfo {
  const phoneOf = (jid: string | undefined) => {
    const d = jid ? jidDecode(jid) : undefined;
    return d && d.server === 's.whatsapp.net' ? d.user : null;
  };
  return {
    jid: m.id,
    subject: m.subject ?? '',
    owner: phoneOf(m.ownerPn ?? m.owner),
    creation: Number.isFinite(m.creation) ? (m.creation ?? null) : null,
    size: m.size ?? m.participants.length,
    participants: m.participants.map((p) => ({
      jid: p.id,
      phone: phoneOf(p.phoneNumber ?? p.id),
      admin: p.admin === 'admin' || p.admin === 'superadmin' ? p.admin : null,
    })),
  };
}

export function createEngineSocket(o: EngineOptions): EngineSocket {
  const sock: WASocket = makeWASocket({
    ...(o.waWebSocketUrl ? { waWebSocketUrl: o.waWebSocketUrl } : {}),
    version: o.version ?? DEFAULT_WA_VERSION,
    // One agent per socket: the WebSocket and the agent-based uploads go through the session's proxy.
    agent: o.agent,
    fetchAgent: o.agent,
    auth: o.auth,
    logger: o.logger,
    browser: o.browser ?? Browsers.ubuntu('Chrome'),
    printQRInTerminal: false,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    // History blobs are downloaded with global fetch (no SOCKS dispatcher): never download them.
    shouldSyncHistoryMessage: () => false,
    generateHighQualityLinkPreview: false,
    connectTimeoutMs: o.connectTimeoutMs,
    keepAliveIntervalMs: o.keepAliveIntervalMs,
    defaultQueryTimeoutMs: o.defaultQueryTimeoutMs,
    ...(o.qrTimeout ? { qrTimeout: o.qrTimeout } : {}),
    // A recipient that could not decrypt asks for a retry: re-encrypt the original from the sent-message store.
    getMessage: async (key) => {
      const text = key.id ? o.sentText?.(key.id) : undefined;
      return text === undefined ? undefined : { conversation: text };
    },
  });
  // Server acks of our messages, by id: a send waits for its own (Baileys only turns an error ack into an ERROR
  // status update, after sendMessage resolved).
  /**
   * Today a 1:1 chat may be addressed by LID; the phone number comes with the message when the contact shares it
   * (Baileys puts it in `remoteJidAlt` and stores the mapping), or from a mapping learnt earlier.
   */
  const addressOf = async (
    jid: string,
    alt: string | undefined,
  ): Promise<Pick<InboundText, 'from' | 'fromPhone' | 'fromLid'>> => {
    const primary = jidDecode(jid);
    const secondary = alt ? jidDecode(alt) : undefined;
    if (primary?.server !== 'lid') {
      const lid = secondary?.server === 'lid' ? secondary.user : null;
      return { from: primary?.user ?? jid, fromPhone: primary?.user ?? null, fromLid: lid };
    }
    let phone = secondary && secondary.server !== 'lid' ? secondary.user : null;
    if (!phone) {
      const mapped = await sock.signalRepository.lidMapping.getPNForLID(jidNormalizedUser(jid)).catch(() => null);
      phone = mapped ? (jidDecode(mapped)?.user ?? null) : null;
    }
    return { from: phone ?? `${primary.user}@lid`, fromPhone: phone, fromLid: primary.user };
  };

  /**
   * Each message a contact sent (not ours, no status broadcast; in a group the sender is the member), as it arrives:
   * `pick` keeps what a handler wants from it, `emit` gets that with the chat, the sender's address and the time.
   */
  const onContactMessages = <T>(
    pick: (m: WAMessage) => T | undefined,
    emit: (
      picked: T,
      from: Pick<InboundText, 'waMessageId' | 'from' | 'fromPhone' | 'fromLid' | 'chat' | 'group' | 'timestamp'>,
    ) => void,
  ) => {
    sock.ev.on('messages.upsert', ({ messages, type }) => {
      if (type !== 'notify') return;
      for (const m of messages) {
        const jid = m.key.remoteJid;
        if (m.key.fromMe || !jid || jid === 'status@broadcast' || !m.key.id) continue;
        const picked = pick(m);
        if (picked === undefined) continue;
        const waMessageId = m.key.id;
        const timestamp = m.messageTimestamp ? toNumber(m.messageTimestamp) * 1000 : Date.now();
        const group = jid.endsWith('@g.us') ? jid : undefined;
        if (group && !m.key.participant) continue;
        const sender = group ? m.key.participant! : jid;
        const alt = group ? m.key.participantAlt : m.key.remoteJidAlt;
        void addressOf(sender, alt ?? undefined).then((a) =>
          emit(picked, { waMessageId, ...a, chat: jid, ...(group ? { group } : {}), timestamp }),
        );
      }
    });
  };

  const sendUnwaited = async (
    jid: string,
    text: string,
    opts: { messageId?: string; ephemeralExpiration?: number; quoted?: OutboxQuoted },
  ): Promise<string> => {
    const msg = await sock.sendMessage(
      jid,
      { text, linkPreview: null },
      {
        ...(opts.messageId ? { messageId: opts.messageId } : {}),
        ...(opts.ephemeralExpiration ? { ephemeralExpiration: opts.ephemeralExpiration } : {}),
        ...quotedOption(opts.quoted),
      },
    );
    return msg?.key.id ?? opts.messageId ?? '';
  };
  const ackWaiters = new Map<string, (error: string | undefined) => void>();
  sock.ws.on('CB:ack,class:message', (node: { attrs: Record<string, string> }) => {
    const id = node.attrs.id;
    if (id) ackWaiters.get(id)?.(node.attrs.error);
  });
  /** Runs a send and waits for the server's ack of message `id` (an error ack rejects). */
  const withServerAck = async (id: string, send: () => Promise<string>): Promise<string> => {
    let timer: NodeJS.Timeout | undefined;
    const acked = new Promise<string | undefined>((resolve) => {
      ackWaiters.set(id, resolve);
      timer = setTimeout(() => resolve(undefined), SERVER_ACK_TIMEOUT_MS);
    });
    try {
      const sentId = await send();
      const error = await acked;
      if (error) throw new MessageRejectedError(error, sentId || id);
      return sentId;
    } finally {
      clearTimeout(timer);
      ackWaiters.delete(id);
    }
  };
  return {
    get userJid() {
      return sock.user?.id;
    },
    get hasPushName() {
      return Boolean(sock.authState.creds.me?.name);
    },
    onConnectionUpdate(handler) {
      sock.ev.on('connection.update', (u) =>
        handler({ qr: u.qr, isNewLogin: u.isNewLogin, connection: u.connection, error: u.lastDisconnect?.error }),
      );
    },
    onCredsUpdate(handler) {
      sock.ev.on('creds.update', () => handler());
    },
    onInboundText(handler) {
      onContactMessages(
        (m) => {
          const media = mediaOf(m.message);
          const text = media ? (media.caption ?? '') : textOf(m.message);
          return text === undefined ? undefined : { text, media };
        },
        ({ text, media }, from) => handler({ ...from, text, ...(media ? { media } : {}) }),
      );
    },
    onOwnMessageStatus(handler) {
      sock.ev.on('messages.update', (updates) => {
        for (const { key, update } of updates) {
          if (!key.fromMe || !key.id) continue;
          const status = statusOf(update.status);
          if (status) handler(key.id, status);
        }
      });
    },
    async sendText(jid, text, opts = {}) {
      if (!opts.messageId) return sendUnwaited(jid, text, opts);
      return withServerAck(opts.messageId, () => sendUnwaited(jid, text, opts));
    },
    async sendMedia(jid, media, opts = {}) {
      const send = async () => {
        const msg = await sock.sendMessage(jid, mediaContent(media), {
          ...(opts.messageId ? { messageId: opts.messageId } : {}),
          ...quotedOption(opts.quoted),
        });
        return msg?.key.id ?? opts.messageId ?? '';
      };
      return opts.messageId ? withServerAck(opts.messageId, send) : send();
    },
    async sendAction(jid, action, text, opts = {}) {
      const send = async () => {
        const msg = await sock.sendMessage(jid, actionContent(action, text), {
          ...(opts.messageId ? { messageId: opts.messageId } : {}),
          ...quotedOption(opts.quoted),
        });
        return msg?.key.id ?? opts.messageId ?? '';
      };
      return opts.messageId ? withServerAck(opts.messageId, send) : send();
    },
    onInboundAction(handler) {
      onContactMessages(
        (m) => {
          const content = normalizeMessageContent(m.message);
          const reaction = content?.reactionMessage;
          const protocol = content?.protocolMessage;
          const T = proto.Message.ProtocolMessage.Type;
          let action: Pick<InboundAction, 'kind' | 'targetId' | 'targetFromMe' | 'emoji' | 'text'> | undefined;
          // Baileys has already turned a reaction's key into our view (fromMe: a message we sent)
          if (reaction?.key?.id)
            action = {
              kind: 'reaction',
              targetId: reaction.key.id,
              targetFromMe: Boolean(reaction.key.fromMe),
              emoji: reaction.text ?? '',
            };
          else if (protocol?.key?.id && protocol.type === T.REVOKE)
            // the key is in the sender's view: fromMe there means the sender's own message, i.e. not ours
            action = { kind: 'revoke', targetId: protocol.key.id, targetFromMe: false };
          else if (protocol?.key?.id && protocol.type === T.MESSAGE_EDIT)
            action = {
              kind: 'edit',
              targetId: protocol.key.id,
              targetFromMe: false,
              text: textOf(protocol.editedMessage) ?? '',
            };
          return action;
        },
        (action, from) => handler({ ...action, ...from }),
      );
    },
    async downloadMedia(media, file, opts) {
      if (media.fileLength !== null && media.fileLength > opts.maxBytes)
        throw new MediaDownloadError('too_large', `media of ${media.fileLength} bytes is over ${opts.maxBytes}`);
      // WhatsApp clients fetch the directPath from a media host of `media_conn`, never a host the message names.
      const conn = await sock.refreshMediaConn(false);
      const host = conn.hosts[0]?.hostname;
      if (!host) throw new MediaDownloadError('download_failed', 'media_conn named no media host');
      const keys = await getMediaKeys(media.mediaKey, media.type === 'voice' ? 'audio' : media.type);
      if (!keys.macKey) throw new MediaDownloadError('download_failed', 'no MAC key for this media type');
      const body = await httpsGet(`https://${host}${media.directPath}`, o.agent, opts.timeoutMs, {
        Origin: DEFAULT_ORIGIN,
      });
      return decryptMediaTo(
        body,
        { iv: Buffer.from(keys.iv), cipherKey: Buffer.from(keys.cipherKey), macKey: Buffer.from(keys.macKey) },
        {
          fileEncSha256: Buffer.from(media.fileEncSha256),
          fileSha256: Buffer.from(media.fileSha256),
          fileLength: media.fileLength,
        },
        file,
        opts.maxBytes,
      );
    },
    async sendPresenceAvailable() {
      await sock.sendPresenceUpdate('available');
    },
    async requestPairingCode(phone) {
      return sock.requestPairingCode(phone);
    },
    async checkNumbers(phones) {
      const query = new USyncQuery().withContactProtocol().withLIDProtocol();
      for (const phone of phones) query.withUser(new USyncUser().withPhone(`+${phone}`));
      const answer = await sock.executeUSyncQuery(query);
      const byUser = new Map<string, { id: string; contact?: unknown; lid?: unknown }>();
      for (const entry of answer?.list ?? []) {
        const user = jidDecode(entry.id)?.user;
        if (user) byUser.set(user, entry as { id: string; contact?: unknown; lid?: unknown });
      }
      return phones.map((phone) => {
        const entry = byUser.get(phone);
        if (!entry || entry.contact !== true) return { phone, exists: false };
        return {
          phone,
          exists: true,
          jid: jidNormalizedUser(entry.id),
          ...(typeof entry.lid === 'string' && entry.lid ? { lid: entry.lid } : {}),
        };
      });
    },
    async readMessages(messages) {
      await sock.readMessages(
        messages.map((m) => ({
          remoteJid: m.chat,
          id: m.id,
          fromMe: false,
          ...(m.participant ? { participant: m.participant } : {}),
        })),
      );
    },
    async groupList() {
      return Object.values(await sock.groupFetchAllParticipating()).map(groupInfoOf);
    },
    async groupInfo(jid) {
      return groupInfoOf(await sock.groupMetadata(jid));
    },
    async groupCreate(subject, phones) {
      return groupInfoOf(
        await sock.groupCreate(
          subject,
          phones.map((p) => `${p}@s.whatsapp.net`),
        ),
      );
    },
    async groupParticipants(jid, phones, change) {
      const answer = await sock.groupParticipantsUpdate(
        jid,
        phones.map((p) => `${p}@s.whatsapp.net`),
        change,
      );
      return answer.map((r) => ({ phone: jidDecode(r.jid)?.user ?? r.jid ?? '', status: r.status }));
    },
    async groupLeave(jid) {
      await sock.groupLeave(jid);
    },
    async sendChatState(jid, state) {
      await sock.sendPresenceUpdate(state, jid);
    },
    async logout() {
      await sock.logout();
    },
    end(err) {
      void sock.end(err).catch(() => undefined);
    },
  };
}
