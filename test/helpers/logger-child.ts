/**
 * Child process for test/logger.test.ts: logs secrets in every shape a real log call might carry them, through
 * the product's logger (pino writes to fd 1, so the test reads this process's stdout).
 */
import { createLogger } from '../../common/logger.js';

const [proxyUrl, apiKey, webhookSecret, botToken] = process.argv.slice(2) as [string, string, string, string];
const log = createLogger('redaction-test', 'debug');
log.info({ proxy: proxyUrl }, 'field holding a proxy URL');
log.info(`message quoting ${proxyUrl}`);
log.info('printf-style %s', proxyUrl);
log.warn({ err: new Error(`connect failed via ${proxyUrl}`).message }, 'error message with a proxy URL');
log.info({ apiKey, webhookSecret, password: 'pw-plain-secret-1', token: botToken }, 'named secret fields');
log.info({ config: { apiKey, secret: webhookSecret, password: 'pw-plain-secret-2' } }, 'nested secret fields');
log.info({ req: { headers: { 'x-api-key': apiKey, authorization: `Bearer ${apiKey}` } } }, 'request headers');
log.info({ env: { API_KEY: apiKey, WEBHOOK_SECRET: webhookSecret, PROXY_URL: proxyUrl } }, 'worker env');
log.error(`telegram call https://api.telegram.org/${botToken}/sendMessage failed`);
log.info({ list: [proxyUrl, { deep: { url: proxyUrl } }] }, 'arrays and deep values');
log.info({ sessionId: 'alpha', endpoint: '127.0.0.1:1080' }, 'ordinary fields stay');
