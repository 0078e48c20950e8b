/**
 * A strict parser of the Prometheus text exposition format (0.0.4), enough to prove `/metrics` is well-formed:
 * every sample belongs to a family with a `# TYPE`, names and labels are valid, values are numbers.
 */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface PromText {
  types: Map<string, string>;
  samples: PromSample[];
  /** Sum of the values of `name` whose labels include every given label. */
  value(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): PromText {
  const types = new Map<string, string>();
  const samples: PromSample[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      if (!NAME.test(m[2]!)) throw new Error(`bad metric name in ${where}`);
      if (m[1] === 'TYPE') {
        if (!TYPES.has(m[3]!)) throw new Error(`bad type in ${where}`);
        if (types.has(m[2]!)) throw new Error(`duplicate TYPE in ${where}`);
        types.set(m[2]!, m[3]!);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample in ${where}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let consumed = 0;
      for (let lm = re.exec(m[3]); lm; lm = re.exec(m[3])) {
        labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        consumed = re.lastIndex;
        if (consumed >= m[3].length) break;
      }
      if (consumed !== m[3].length) throw new Error(`bad labels in ${where}`);
    }
    const raw = m[4]!;
    // Prometheus parses special values case-insensitively (Go's ParseFloat); prom-client writes NaN as "Nan".
    const special = raw.toLowerCase();
    const isNaNText = special === 'nan';
    const value =
      special === '+inf' || special === 'inf'
        ? Infinity
        : special === '-inf'
          ? -Infinity
          : isNaNText
            ? NaN
            : Number(raw);
    if (Number.isNaN(value) && !isNaNText) throw new Error(`bad value in ${where}`);
    const name = m[1]!;
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) => types.has(n));
    if (!family) throw new Error(`sample without a # TYPE in ${where}`);
    samples.push({ name, labels, value });
  });
  return {
    types,
    samples,
    value(name, want = {}) {
      return samples
        .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
        .reduce((n, s) => n + s.value, 0);
    },
  };
}
