export {
  WhatsAppSimulator,
  SIMULATOR_CERT_ROOT_PUBLIC_KEY_HEX,
  FAULT_KINDS,
  isLoopbackHost,
  lidUserFor,
  type AntiSpamOptions,
  type ClientVersion,
  type ConnectionRecord,
  type ExportedPhone,
  type FaultKind,
  type PhoneSummary,
  type RecordedMessage,
  type SimulatorOptions,
} from './wa-server.js';
export { Socks5Proxy, type ProxyFault, type Socks5ProxyOptions, type Socks5ProxyStats } from './socks5.js';
export { startControlApi, type ControlApi, type ControlApiOptions } from './control-api.js';
