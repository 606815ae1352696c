/**
 * Structured logs: one JSON object per line (pino), with secrets removed twice over.
 *
 * 1. By path: fields that hold secrets by name (`secretKey`, `apiKey`, `authorization`, `password`,
 *    `webhookSecrets`, `DATABASE_URL`, ...) are replaced with `[redacted]` before serialisation.
 * 2. By value: every finished line is scanned for things that look like secrets wherever they sit
 *    (a message, an error's stack, a nested field the paths did not foresee) and for the exact secret
 *    values this process was configured with. Patterns: Stripe secret and restricted keys
 *    (`sk_…`, `rk_…`), webhook signing secrets (`whsec_…`), `Bearer`/`Basic` credentials, and the
 *    password in a URL's user info (`postgres://user:pw@host`).
 *
 * The Temporal SDK's own log (core, worker, workflow `log`, activity `log`) is routed into the same
 * logger by `temporalLogger`, so a secret an SDK error message quotes is caught by the same scan.
 */
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export type LogLevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export const REDACTED = '[redacted]';

/** Field names that hold a secret wherever they appear (top level and one level down). */
const SECRET_FIELDS = [
  'secretKey',
  'apiKey',
  'api_key',
  'authorization',
  'Authorization',
  'password',
  'webhookSecrets',
  'webhookSecret',
  'secret',
  'DATABASE_URL',
  'databaseUrl',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRETS',
  'TEMPORAL_API_KEY',
];

export const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.headers.authorization',
  '*.headers["stripe-signature"]',
];

/** Patterns for secrets in free text. Each keeps a harmless prefix so the line stays readable. */
const SECRET_PATTERNS: readonly { readonly pattern: RegExp; readonly replace: string }[] = [
  { pattern: /\b(sk|rk)_(test|live)_[A-Za-z0-9]+/g, replace: `$1_$2_${REDACTED}` },
  { pattern: /\bwhsec_[A-Za-z0-9+/=]+/g, replace: `whsec_${REDACTED}` },
  // A PaymentIntent's or SetupIntent's client secret: for the customer's browser only. The id stays.
  { pattern: /\b((?:pi|seti)_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+/g, replace: `$1_secret_${REDACTED}` },
  { pattern: /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, replace: `$1 ${REDACTED}` },
  { pattern: /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@"'\\]+):[^\s@/"'\\]+@/gi, replace: `$1:${REDACTED}@` },
];

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes secrets from a piece of text: the known values first (exact), then the patterns.
 * Known values shorter than 8 characters are ignored: they would blank out ordinary words.
 */
export function redactText(text: string, knownSecrets: readonly string[] = []): string {
  let out = text;
  for (const secret of knownSecrets) {
    if (secret.length >= 8) out = out.replace(new RegExp(escapeRegExp(secret), 'g'), REDACTED);
  }
  for (const { pattern, replace } of SECRET_PATTERNS) out = out.replace(pattern, replace);
  return out;
}

export interface CreateLoggerOptions {
  readonly level: LogLevelName;
  /** Secret values this process knows (the Stripe key, webhook secrets, a Temporal API key). */
  readonly knownSecrets?: readonly string[];
  /** Where lines go. Default: stdout. Tests pass a stream that collects them. */
  readonly destination?: DestinationStream;
  /** `name` field on every line, e.g. `worker` or `stack`. */
  readonly name?: string;
}

/** A pino logger writing JSON lines with both kinds of redaction. */
export function createLogger(options: CreateLoggerOptions): Logger {
  const known = [...(options.knownSecrets ?? [])].filter((s) => s.length > 0);
  return pino(
    {
      level: options.level,
      ...(options.name === undefined ? {} : { name: options.name }),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      // The last line of defence: whatever reached the serialised line is scanned as text.
      hooks: { streamWrite: (line) => redactText(line, known) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

const TEMPORAL_LEVELS: Record<LogLevel, LogLevelName> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** The Temporal SDK's `Logger`, writing into a pino logger (child `component: temporal`). */
export function temporalLogger(logger: Logger): TemporalLogger {
  const child = logger.child({ component: 'temporal' });
  const write = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    const fields: Record<string, unknown> = { ...meta };
    // The SDK passes errors under `error`/`failure`; pino serialises `err` with stack and cause.
    if (fields.error instanceof Error) {
      fields.err = fields.error;
      delete fields.error;
    }
    child[TEMPORAL_LEVELS[level]](fields, message);
  };
  return {
    log: write,
    trace: (m, meta) => write('TRACE', m, meta),
    debug: (m, meta) => write('DEBUG', m, meta),
    info: (m, meta) => write('INFO', m, meta),
    warn: (m, meta) => write('WARN', m, meta),
    error: (m, meta) => write('ERROR', m, meta),
  };
}
