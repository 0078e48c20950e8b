// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert',
  'buffer',
  'child_process',
  'cluster',
  'crypto',
  'dgram',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'http2',
  'https',
  'net',
  'os',
  'path',
  'process',
  'readline',
  'stream',
  'timers',
  'tls',
  'url',
  'util',
  'v8',
  'vm',
  'worker_threads',
  'zlib',
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'data/**',
      'sessions/**',
      'backups/**',
      'dashboard/static/**',
      '**/*.js',
      '!dashboard/**/*.js',
      '**/*.cjs',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/it return promises the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'off',
      'object-shorthand': 'error',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O libraries. The typed client
    // helpers beside a workflow (`*-client.ts`) run in the API and the orchestrator, never in the sandbox.
    files: ['workflows/**/*.ts'],
    ignores: ['workflows/*-client.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}`), 'ioredis', 'dockerode', 'fastify'].map(
            (name) => ({
              name,
              message: 'Workflows must be deterministic: no Node built-ins or I/O libraries (use activities).',
            }),
          ),
        },
      ],
    },
  },
  ...layers(),
  {
    // The dashboard: plain ES modules in the browser (no build step), checked for undefined and unused names.
    files: ['dashboard/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'document',
          'window',
          'fetch',
          'sessionStorage',
          'EventSource',
          'URLSearchParams',
          'CSS',
          'Node',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'CustomEvent',
        ].map((g) => [g, 'readonly']),
      ),
    },
    rules: { 'no-undef': 'error', '@typescript-eslint/no-unused-vars': ['error', { caughtErrors: 'none' }] },
  },
);

/**
 * The layers (README "Architecture"), lowest first: common ← state ← activities / workflows ← api, orchestrator.
 * wa-worker and simulator stand apart (the worker shares common/ only). A folder never imports from a layer above
 * it; workflows take activities as types only (Temporal's proxyActivities).
 */
function layers() {
  const all = ['common', 'state', 'activities', 'workflows', 'api', 'orchestrator', 'wa-worker', 'simulator'];
  const rule = (files, allowed, opts = {}) => ({
    files,
    ...(opts.ignores ? { ignores: opts.ignores } : {}),
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            ...all
              .filter((f) => !allowed.includes(f) && !files.some((g) => g.startsWith(`${f}/`)))
              .map((f) => ({
                group: [`**/${f}/**`, `../${f}/*`, `../../${f}/*`],
                message: `${files.join(', ')} must not import from ${f}/ (layering, see README "Architecture").`,
              })),
            ...(opts.typeOnly ?? []).map((f) => ({
              group: [`**/${f}/**`, `../${f}/*`, `../../${f}/*`],
              allowTypeImports: true,
              message: `${files.join(', ')} may import ${f}/ as types only.`,
            })),
          ],
        },
      ],
    },
  });
  return [
    rule(['common/**/*.ts'], []),
    rule(['state/**/*.ts'], ['common']),
    rule(['activities/**/*.ts'], ['common', 'state']),
    rule(['workflows/**/*.ts'], ['common', 'activities'], {
      ignores: ['workflows/*-client.ts'],
      typeOnly: ['activities'],
    }),
    rule(['workflows/*-client.ts'], ['common', 'state', 'workflows']),
    rule(['api/**/*.ts'], ['common', 'state', 'workflows']),
    rule(['wa-worker/**/*.ts'], ['common']),
    rule(['simulator/**/*.ts'], []),
  ];
}
