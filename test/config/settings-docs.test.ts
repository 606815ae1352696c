/**
 * The README's configuration table and `.env.example` against `src/config` itself: every setting the
 * product reads is documented with its default, and nothing documented is made up. A setting added
 * to the schema without a README row (or with a wrong default) fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeSettings, loadConfig, type SettingInfo } from '../../src/config';

const ROOT = path.resolve(__dirname, '..', '..');
const NAME = /^[A-Z][A-Z0-9_]*(\*)?$/;

interface TableRow {
  readonly names: readonly string[];
  /** The backticked values in the default column, in order. */
  readonly defaults: readonly string[];
  readonly defaultCell: string;
  readonly line: string;
}

const codeSpans = (cell: string): string[] => [...cell.matchAll(/`([^`]*)`/g)].map((m) => m[1] ?? '');

/** The rows of the table under `## Configuration` in README.md. */
function readmeTable(): TableRow[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Configuration\s*$/m)[1]?.split(/^## /m)[0];
  assert.ok(section, 'README.md has a "## Configuration" section');
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  assert.ok(lines.length > 2, 'the Configuration section has a table');
  const header = lines[0]?.split('|').map((c) => c.trim().toLowerCase());
  assert.deepEqual(header?.slice(1, 3), ['variable', 'default'], 'columns: variable | default | …');
  return lines.slice(2).map((line) => {
    const cells = line.split('|').map((c) => c.trim());
    const defaultCell = cells[2] ?? '';
    return { names: codeSpans(cells[1] ?? ''), defaults: codeSpans(defaultCell), defaultCell, line };
  });
}

/** A documented name covers a setting by equality or, for `PREFIX_*`, by prefix. */
function covers(documented: string, setting: string): boolean {
  if (documented === setting) return true;
  return documented.endsWith('*') && setting.startsWith(documented.slice(0, -1)) && !setting.endsWith('*');
}

describe('configuration documentation', () => {
  const settings: readonly SettingInfo[] = describeSettings();

  it('lists every setting of src/config in the README table, and only real ones', () => {
    const rows = readmeTable();
    const documented = rows.flatMap((r) => r.names);
    for (const name of documented) assert.match(name, NAME, `a variable name in the README table: ${name}`);
    const missing = settings.filter((s) => !documented.some((d) => covers(d, s.name))).map((s) => s.name);
    assert.deepEqual(missing, [], 'settings read by src/config without a README row');
    const unknown = documented.filter((d) => !settings.some((s) => covers(d, s.name)));
    assert.deepEqual(unknown, [], 'README rows naming no setting src/config reads');
  });

  it('gives each setting its real default in the README table', () => {
    const rows = readmeTable();
    const wrong: string[] = [];
    for (const s of settings) {
      const row = rows.find((r) => r.names.includes(s.name));
      if (!row) continue; // covered by a wildcard row: envconfig variables, which have no default
      if (s.default === undefined) {
        if (row.defaultCell.length === 0) wrong.push(`${s.name}: the default column is empty`);
        continue;
      }
      // A row of several variables gives their defaults in the same order ("`a` / `b`").
      const shown = row.names.length > 1 ? [row.defaults[row.names.indexOf(s.name)]] : row.defaults;
      if (!shown.includes(s.default)) {
        wrong.push(
          `${s.name}: README says ${row.defaultCell || '(nothing)'}, src/config says \`${s.default}\``,
        );
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('puts every setting in .env.example, defaults as set lines and the rest commented out', () => {
    const lines = readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n');
    const entries = lines
      .map((l) => /^(# )?([A-Z][A-Z0-9_]*\*?)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ commented: m[1] !== undefined, name: m[2] ?? '', value: m[3] ?? '' }));
    const names = entries.map((e) => e.name);
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      'each setting appears once',
    );
    assert.deepEqual([...names].sort(), settings.map((s) => s.name).sort());
    for (const s of settings) {
      const e = entries.find((x) => x.name === s.name);
      if (s.default !== undefined) {
        assert.deepEqual(e, { commented: false, name: s.name, value: s.default }, `${s.name}=${s.default}`);
      } else {
        assert.equal(e?.commented, true, `${s.name} has no default, so .env.example leaves it commented out`);
      }
    }
  });

  it('loads .env.example as it stands to the same configuration as an empty environment', () => {
    const env: Record<string, string> = {};
    for (const line of readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n')) {
      const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      if (m?.[1] !== undefined) env[m[1]] = m[2] ?? '';
    }
    assert.ok(Object.keys(env).length > 10);
    assert.deepEqual(loadConfig(env), loadConfig({}));
  });

  it('never puts a real-looking secret in .env.example', () => {
    const text = readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    for (const s of settings.filter((x) => x.secret)) {
      const line = text.split('\n').find((l) => l.startsWith(`# ${s.name}=`));
      assert.ok(line, `${s.name} is commented out`);
      assert.match(line, /replace|…|<|example/i, `${s.name} shows a placeholder: ${line}`);
    }
  });
});
