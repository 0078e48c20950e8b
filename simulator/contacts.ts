import { randomInt } from 'node:crypto';
import {
  Curve,
  encodeBigEndian,
  encodeWAMessage,
  generateSignalPubKey,
  initAuthCreds,
  proto,
  signedKeyPair,
  unpadRandomMax16,
  type AuthenticationCreds,
  type BinaryNode,
  type KeyPair,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStoreWithTransaction,
} from '@whiskeysockets/baileys';
import pino from 'pino';
import { makeLibSignalRepository } from '@whiskeysockets/baileys/lib/Signal/libsignal.js';

const SILENT = pino({ level: 'silent' });

type SignalRepository = ReturnType<typeof makeLibSignalRepository>;

/** What a linked companion uploaded with `<iq xmlns="encrypt" type="set">`: enough to start a session to it. */
export interface CompanionBundle {
  registrationId: number;
  identity: Buffer;
  signedPreKey: { id: number; value: Buffer; signature: Buffer };
  preKeys: Array<{ id: number; value: Buffer }>;
}

/** In-memory Signal key store: all a fake contact needs (pre-keys, sessions). */
function memoryKeyStore(): SignalKeyStoreWithTransaction & { clearType(type: keyof SignalDataTypeMap): void } {
  const data = new Map<string, Map<string, unknown>>();
  return {
    clearType(type) {
      data.delete(type);
    },
    get<T extends keyof SignalDataTypeMap>(type: T, ids: string[]) {
      const bucket = data.get(type);
      const result: { [id: string]: SignalDataTypeMap[T] } = {};
      for (const id of ids) {
        const value = bucket?.get(id);
        if (value !== undefined) result[id] = value as SignalDataTypeMap[T];
      }
      return result;
    },
    set(changes: SignalDataSet) {
      for (const [type, entries] of Object.entries(changes)) {
        let bucket = data.get(type);
        if (!bucket) data.set(type, (bucket = new Map()));
        for (const [id, value] of Object.entries(entries ?? {})) {
          if (value === null || value === undefined) bucket.delete(id);
          else bucket.set(id, value);
        }
      }
    },
    // 7.x's repository runs every operation in a transaction; a contact's store is synchronous, so it is one.
    isInTransaction: () => false,
    transaction: (exec) => exec(),
  };
}

/**
 * A remote WhatsApp user (or the account's own primary phone, device 0) with a full Signal identity,
 * so the simulator can hand out its pre-key bundle, decrypt what a companion sends to it and
 * encrypt messages from it to a companion.
 */
export class FakeContact {
  private readonly creds: AuthenticationCreds;
  private readonly keys = memoryKeyStore();
  private readonly repository: SignalRepository;
  /** companion device jids this contact already has a Signal session with */
  private readonly sessionsWith = new Set<string>();

  /** `identity`: the Signal identity key pair to use (a primary phone's is its account key); fresh otherwise. */
  constructor(
    readonly jid: string,
    identity?: KeyPair,
  ) {
    const creds = initAuthCreds();
    this.creds = identity ? { ...creds, signedIdentityKey: identity, signedPreKey: signedKeyPair(identity, 1) } : creds;
    this.repository = makeLibSignalRepository({ creds: this.creds, keys: this.keys }, SILENT);
  }

  /**
   * `<user>` node for an `encrypt/get key` answer. Every bundle carries a fresh one-time pre-key,
   * because libsignal deletes a pre-key once a session was built from it and several companions
   * (of different simulated phones) may fetch this contact's bundle.
   */
  async bundleNode(requestedJid: string): Promise<BinaryNode> {
    const preKeyId = randomInt(1, 0xffffff);
    const preKey = Curve.generateKeyPair();
    await this.keys.set({ 'pre-key': { [String(preKeyId)]: preKey } });
    const { signedIdentityKey, signedPreKey, registrationId } = this.creds;
    return {
      tag: 'user',
      attrs: { jid: requestedJid },
      content: [
        { tag: 'registration', attrs: {}, content: encodeBigEndian(registrationId, 4) },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: signedIdentityKey.public },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: encodeBigEndian(signedPreKey.keyId, 3) },
            { tag: 'value', attrs: {}, content: signedPreKey.keyPair.public },
            { tag: 'signature', attrs: {}, content: signedPreKey.signature as Uint8Array },
          ],
        },
        {
          tag: 'key',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: encodeBigEndian(preKeyId, 3) },
            { tag: 'value', attrs: {}, content: preKey.public },
          ],
        },
      ],
    };
  }

  /**
   * The contact's device lost its Signal sessions (reinstalled, restored from an old backup): what a sender
   * encrypted for the old session cannot be decrypted any more until the sender starts a new one (retry receipt).
   */
  forgetSessions(): Promise<void> {
    this.keys.clearType('session');
    this.sessionsWith.clear();
    return Promise.resolve();
  }

  /** Decrypts a Signal message a companion (`fromJid`, with device) sent to this contact. */
  async decrypt(fromJid: string, type: 'pkmsg' | 'msg', ciphertext: Uint8Array): Promise<proto.IMessage> {
    const plaintext = await this.repository.decryptMessage({ jid: fromJid, type, ciphertext });
    this.sessionsWith.add(fromJid);
    return proto.Message.decode(unpadRandomMax16(plaintext));
  }

  /** Takes in a sender key a group member (`authorJid`) distributed, as a group member's device does. */
  async processSenderKey(authorJid: string, groupId: string, skdm: Uint8Array): Promise<void> {
    await this.repository.processSenderKeyDistributionMessage({
      authorJid,
      item: { groupId, axolotlSenderKeyDistributionMessage: skdm },
    });
  }

  /** Decrypts a group message (`skmsg`) `authorJid` sent with its sender key. */
  async decryptGroup(groupJid: string, authorJid: string, ciphertext: Uint8Array): Promise<proto.IMessage> {
    const plaintext = await this.repository.decryptGroupMessage({ group: groupJid, authorJid, msg: ciphertext });
    return proto.Message.decode(unpadRandomMax16(plaintext));
  }

  /** Encrypts a group message from this contact with its own sender key, and the distribution message for it. */
  async encryptGroup(
    groupJid: string,
    message: proto.IMessage,
  ): Promise<{ ciphertext: Uint8Array; senderKeyDistributionMessage: Uint8Array }> {
    return this.repository.encryptGroupMessage({ group: groupJid, meId: this.jid, data: encodeWAMessage(message) });
  }

  /** Encrypts a message from this contact to a companion, building a session from its uploaded bundle if needed. */
  async encryptTo(
    companionJid: string,
    bundle: CompanionBundle,
    message: proto.IMessage,
  ): Promise<{ type: 'pkmsg' | 'msg'; ciphertext: Uint8Array }> {
    if (!this.sessionsWith.has(companionJid)) {
      const preKey = bundle.preKeys.shift();
      if (!preKey) throw new Error(`companion ${companionJid} has no pre-keys left`);
      await this.repository.injectE2ESession({
        jid: companionJid,
        session: {
          registrationId: bundle.registrationId,
          identityKey: generateSignalPubKey(bundle.identity),
          signedPreKey: {
            keyId: bundle.signedPreKey.id,
            publicKey: generateSignalPubKey(bundle.signedPreKey.value),
            signature: bundle.signedPreKey.signature,
          },
          preKey: { keyId: preKey.id, publicKey: generateSignalPubKey(preKey.value) },
        },
      });
      this.sessionsWith.add(companionJid);
    }
    return this.repository.encryptMessage({ jid: companionJid, data: encodeWAMessage(message) });
  }
}

/** The text of a decrypted message, looking through the wrapper used for the sender's own devices. */
export function messageText(message: proto.IMessage): string | undefined {
  const inner = message.deviceSentMessage?.message ?? message;
  return inner.conversation ?? inner.extendedTextMessage?.text ?? undefined;
}

/**
 * What a decrypted message is besides its text, as the recipient's phone shows it: a reaction (to which message,
 * which emoji; '' removes it), a delete for everyone or an edit (of which message, the new text), a reply (the quoted
 * message: id, author, text), a location, contact card(s). Absent fields: not that kind.
 */
export interface MessageDetails {
  kind?: 'reaction' | 'revoke' | 'edit' | 'location' | 'contact';
  reaction?: { targetId: string; targetFromMe: boolean; text: string };
  revoke?: { targetId: string };
  edit?: { targetId: string; text: string };
  quoted?: { id: string; participant: string | null; text: string };
  location?: { latitude: number; longitude: number; name: string | null; address: string | null };
  contacts?: Array<{ displayName: string | null; vcard: string }>;
}

export function messageDetails(message: proto.IMessage): MessageDetails {
  const m = message.deviceSentMessage?.message ?? message;
  const out: MessageDetails = {};
  if (m.reactionMessage?.key?.id) {
    out.kind = 'reaction';
    out.reaction = {
      targetId: m.reactionMessage.key.id,
      // the sender's view: fromMe = a message the sender wrote
      targetFromMe: Boolean(m.reactionMessage.key.fromMe),
      text: m.reactionMessage.text ?? '',
    };
  }
  const p = m.protocolMessage;
  if (p?.key?.id && p.type === proto.Message.ProtocolMessage.Type.REVOKE) {
    out.kind = 'revoke';
    out.revoke = { targetId: p.key.id };
  }
  if (p?.key?.id && p.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
    out.kind = 'edit';
    out.edit = { targetId: p.key.id, text: (p.editedMessage && messageText(p.editedMessage)) ?? '' };
  }
  const loc = m.locationMessage;
  if (loc) {
    out.kind = 'location';
    out.location = {
      latitude: loc.degreesLatitude ?? 0,
      longitude: loc.degreesLongitude ?? 0,
      name: loc.name || null,
      address: loc.address || null,
    };
  }
  const cards = m.contactMessage ? [m.contactMessage] : (m.contactsArrayMessage?.contacts ?? null);
  if (cards) {
    out.kind = 'contact';
    out.contacts = cards.map((c) => ({ displayName: c.displayName || null, vcard: c.vcard ?? '' }));
  }
  const context =
    m.extendedTextMessage?.contextInfo ??
    m.imageMessage?.contextInfo ??
    m.documentMessage?.contextInfo ??
    m.videoMessage?.contextInfo ??
    m.audioMessage?.contextInfo ??
    m.locationMessage?.contextInfo ??
    m.contactMessage?.contextInfo ??
    m.contactsArrayMessage?.contextInfo;
  if (context?.stanzaId)
    out.quoted = {
      id: context.stanzaId,
      participant: context.participant || null,
      text: (context.quotedMessage && messageText(context.quotedMessage)) ?? '',
    };
  return out;
}

/** `<user>` node for an `encrypt/get key` answer from a companion's uploaded bundle, handing out one pre-key. */
export function companionBundleNode(requestedJid: string, bundle: CompanionBundle): BinaryNode {
  // like WhatsApp, each one-time pre-key is handed out once; without any left the bundle has none
  const preKey = bundle.preKeys.shift();
  const content: BinaryNode[] = [
    { tag: 'registration', attrs: {}, content: encodeBigEndian(bundle.registrationId, 4) },
    { tag: 'type', attrs: {}, content: Buffer.from([5]) },
    { tag: 'identity', attrs: {}, content: bundle.identity },
    {
      tag: 'skey',
      attrs: {},
      content: [
        { tag: 'id', attrs: {}, content: encodeBigEndian(bundle.signedPreKey.id, 3) },
        { tag: 'value', attrs: {}, content: bundle.signedPreKey.value },
        { tag: 'signature', attrs: {}, content: bundle.signedPreKey.signature },
      ],
    },
  ];
  if (preKey)
    content.push({
      tag: 'key',
      attrs: {},
      content: [
        { tag: 'id', attrs: {}, content: encodeBigEndian(preKey.id, 3) },
        { tag: 'value', attrs: {}, content: preKey.value },
      ],
    });
  return { tag: 'user', attrs: { jid: requestedJid }, content };
}
