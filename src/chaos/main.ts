/**
 * `npm run chaos -- --checkouts N --seed S [--workers 2] [--out report.json]
 *   [--variant correct|random-key|no-key] [--concurrency 40] [--deadline-seconds D] [--keep]`
 *
 * Runs the chaos harness and prints the report. Exit status: 0 with no violation, 1 with any
 * violation (or a crash), 2 for bad arguments.
 */
import { writeFileSync } from 'node:fs';
import { VARIANTS, runChaos, type ChaosOptions, type Variant } from './harness';
import { formatReport } from './report';

const USAGE =
  'usage: npm run chaos -- --checkouts N --seed S [--workers 2] [--out report.json] ' +
  '[--variant correct|random-key|no-key] [--concurrency 40] [--deadline-seconds D] [--keep]';

export interface CliArgs {
  readonly options: ChaosOptions;
  readonly out: string | undefined;
}

export class UsageError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`${problems.join('; ')}\n${USAGE}`);
    this.name = 'UsageError';
  }
}

function intArg(problems: string[], name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) {
    problems.push(`--${name}: must be an integer of at least ${min} (got ${JSON.stringify(raw)})`);
    return undefined;
  }
  return n;
}

export function parseArgs(argv: readonly string[]): CliArgs {
  const problems: string[] = [];
  const values = new Map<string, string>();
  let keep = false;
  const known = ['checkouts', 'seed', 'workers', 'out', 'variant', 'concurrency', 'deadline-seconds'];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--keep') {
      keep = true;
      continue;
    }
    const name = arg.startsWith('--') ? arg.slice(2) : '';
    if (!known.includes(name)) {
      problems.push(`${arg}: unknown argument`);
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) {
      problems.push(`${arg}: needs a value`);
      continue;
    }
    values.set(name, value);
    i++;
  }
  const checkouts = intArg(problems, 'checkouts', values.get('checkouts'), 1);
  const seed = intArg(problems, 'seed', values.get('seed'), 0);
  if (checkouts === undefined && !values.has('checkouts')) problems.push('--checkouts: required');
  if (seed === undefined && !values.has('seed')) problems.push('--seed: required');
  const workers = intArg(problems, 'workers', values.get('workers'), 2) ?? 2;
  const concurrency = intArg(problems, 'concurrency', values.get('concurrency'), 1);
  const deadlineSeconds = intArg(problems, 'deadline-seconds', values.get('deadline-seconds'), 1);
  const rawVariant = values.get('variant') ?? 'correct';
  const variant: Variant | undefined = VARIANTS.find((v) => v === rawVariant);
  if (!variant) problems.push(`--variant: must be one of ${VARIANTS.join(', ')}`);
  if (problems.length > 0 || checkouts === undefined || seed === undefined || !variant) {
    throw new UsageError(problems);
  }
  return {
    options: {
      checkouts,
      seed,
      workers,
      variant,
      keepDir: keep,
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(deadlineSeconds === undefined ? {} : { deadlineMs: deadlineSeconds * 1000 }),
    },
    out: values.get('out'),
  };
}

async function main(): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const report = await runChaos({ ...args.options, log: (line) => console.log(line) });
  console.log(`\n${formatReport(report)}`);
  if (args.out) {
    writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`JSON report written to ${args.out}`);
  }
  return report.passed ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error('chaos run failed:', err);
      process.exit(1);
    },
  );
}
