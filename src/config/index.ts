/**
 * Configuration, read and validated once at start. This is the only module that reads
 * `process.env`; everything else receives the typed `AppConfig` (or a part of it) as an argument.
 *
 * Every problem is collected and reported together in one `ConfigError`, naming each variable and
 * what is wrong with it, never its value when the variable holds a secret.
 *
 * Temporal: with `TEMPORAL_ADDRESS`, `TEMPORAL_PROFILE` or `TEMPORAL_CONFIG_FILE` set, the connection
 * comes from `@temporalio/envconfig` (profiles, API key, mTLS, the standard `TEMPORAL_*` variables)
 * and nothing is started; otherwise the product runs its embedded dev server.
 * Stripe: with `STRIPE_SECRET_KEY` set, the real Stripe API is used; otherwise the local Stripe
 * server (the emulator) is started and used.
 */
import path from 'node:path';
import { loadClientConnectConfig, type ClientConnectConfig } from '@temporalio/envconfig';
import { z } from 'zod';

export type Env = Readonly<Record<string, string | undefined>>;

export interface TemporalConfig {
  /** `embedded`: start the pinned dev server; `external`: connect through envconfig. */
  readonly mode: 'embedded' | 'external';
  readonly connect: ClientConnectConfig | undefined;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly embedded: { readonly port: number; readonly uiPort: number; readonly dbFile: string };
  /** How long a worker keeps retrying its first connection (0: one attempt). */
  readonly connectTimeoutMs: number;
}

/** The worker process's own settings (`src/worker.ts`). */
export interface WorkerConfig {
  /**
   * How long in-flight activities may run after SIGTERM/SIGINT; then they are asked to cancel and,
   * shortly after, the worker stops waiting for them and exits 1.
   */
  readonly shutdownGraceMs: number;
  readonly maxConcurrentActivityTaskExecutions: number;
  readonly maxConcurrentWorkflowTaskExecutions: number;
  readonly workflowThreadPoolSize: number;
}

export interface StripeConfig {
  /** `emulator`: start and use the local Stripe server; `stripe`: the real API. */
  readonly mode: 'emulator' | 'stripe';
  readonly secretKey: string;
  readonly emulatorPort: number;
  /** Override of the API endpoint (e.g. an emulator started elsewhere). */
  readonly apiBase:
    { readonly host: string; readonly port: number; readonly protocol: 'http' | 'https' } | undefined;
  readonly webhookSecrets: readonly string[];
  /** Client-side timeout; kept below the Stripe activities' start-to-close timeout. */
  readonly requestTimeoutMs: number;
}

/**
 * Where entitlements go (src/provisioning): SQLite by default, PostgreSQL with `DATABASE_URL`, the
 * user's HTTP endpoint with `PROVISIONING_HTTP_URL`; setting both of the latter is an error.
 */
export interface ProvisioningConfig {
  readonly backend: 'sqlite' | 'postgres' | 'http';
  /** The SQLite file; always resolved (chaos and bench read it), used when `backend` is `sqlite`. */
  readonly sqlitePath: string;
  /** Set iff `backend` is `postgres`. A secret: it may hold a password. */
  readonly databaseUrl: string | undefined;
  /** Set iff `backend` is `http`. `token` is a secret. */
  readonly http:
    { readonly url: string; readonly token: string | undefined; readonly timeoutMs: number } | undefined;
}

/** Metrics and tracing (src/observability). */
export interface ObservabilityConfig {
  /** The worker's Prometheus endpoint; undefined (no `METRICS_PORT`): none. */
  readonly prometheus: { readonly host: string; readonly port: number } | undefined;
  /** How often a worker refreshes the visibility gauges; 0: never. */
  readonly visibilityIntervalMs: number;
  readonly tracing: {
    readonly exporter: 'otlp' | 'none';
    /** The OTLP/HTTP traces URL. */
    readonly otlpEndpoint: string;
    readonly serviceName: string;
  };
}

export interface AppConfig {
  readonly dataDir: string;
  readonly temporal: TemporalConfig;
  readonly stripe: StripeConfig;
  readonly http: { readonly host: string; readonly port: number };
  readonly provisioning: ProvisioningConfig;
  readonly worker: WorkerConfig;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly observability: ObservabilityConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The key the embedded emulator accepts; it is not a secret (no real account behind it). */
export const EMULATOR_SECRET_KEY = 'sk_test_emulator';

/**
 * Activities one worker process runs at once. Its activities wait on Stripe and the provisioning
 * store, not on CPU, and Temporal hands a worker the activity a workflow task schedules together
 * with that task's completion (eager dispatch) only while the worker has a free activity slot;
 * without one the activity goes through the task queue, another server write and poll. At 20 slots
 * the checkout's activities, which take a Stripe round trip, held every slot under load and cost
 * about 4 ms more server and worker CPU per checkout (docs/benchmarks.md). Stripe's rate limit is
 * per account, so it bounds the sum over all workers, not this number; a 429 is retried under the
 * same idempotency key.
 */
export const DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS = 100;
/** Workflow tasks one worker process runs at once. */
export const DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS = 20;
/**
 * Threads a worker process runs workflow code on. The SDK's default with a reused V8 context is
 * one, so every workflow task of the process waits its turn on one thread; with two, a workflow
 * task waits less behind the others (at concurrency 10 the checkout went from 0.83 to 0.93 of the
 * floor's throughput, docs/benchmarks.md) for one more V8 context (about 60 MiB).
 */
export const DEFAULT_WORKFLOW_THREADS = 2;

const port = z.coerce.number().int().min(1).max(65_535);
const SECRET_VARS = new Set([
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRETS',
  'TEMPORAL_API_KEY',
  'DATABASE_URL',
  'PROVISIONING_HTTP_TOKEN',
]);
/** Secrets, and values that may hold one (credentials or a key in a URL): never echoed in errors. */
const NOT_ECHOED = new Set([...SECRET_VARS, 'PROVISIONING_HTTP_URL']);

const schema = z.object({
  DATA_DIR: z.string().min(1).default('data'),
  HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HTTP_PORT: port.default(3000),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  TEMPORAL_TASK_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,200}$/, 'letters, digits, ".", "_" or "-", at most 200')
    .default('checkout'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_EMBEDDED_PORT: port.default(7233),
  TEMPORAL_EMBEDDED_UI_PORT: port.default(8233),
  TEMPORAL_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(60_000),
  // Above STRIPE_TIMEOUT_MS's default, so a Stripe call in flight at SIGTERM ends inside it.
  WORKER_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(3_600_000).default(15_000),
  WORKER_MAX_CONCURRENT_ACTIVITY_TASKS: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS),
  // The SDK needs at least 2 while the workflow cache is on (sticky execution).
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce
    .number()
    .int()
    .min(2)
    .max(10_000)
    .default(DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS),
  WORKER_WORKFLOW_THREADS: z.coerce.number().int().min(1).max(16).default(DEFAULT_WORKFLOW_THREADS),
  STRIPE_SECRET_KEY: z
    .string()
    .regex(
      /^(sk|rk)_(test|live)_[A-Za-z0-9]{8,}$/,
      'must be a Stripe secret or restricted key (sk_… or rk_…)',
    )
    .optional(),
  STRIPE_ALLOW_LIVE_KEY: z.enum(['true', 'false']).default('false'),
  STRIPE_API_BASE: z.url({ protocol: /^https?$/ }).optional(),
  STRIPE_EMULATOR_PORT: port.default(12111),
  STRIPE_WEBHOOK_SECRETS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0),
    )
    .pipe(z.array(z.string().regex(/^whsec_[A-Za-z0-9]+$/, 'each secret must look like whsec_…')).max(2))
    .optional(),
  STRIPE_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(60_000).default(10_000),
  PROVISIONING_SQLITE_PATH: z.string().min(1).optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  METRICS_PORT: port.optional(),
  METRICS_VISIBILITY_INTERVAL_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(3_600_000)
    .refine((n) => n === 0 || n >= 1_000, '0 (off) or at least 1000')
    .default(30_000),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('checkout'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  PROVISIONING_HTTP_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .refine((u) => {
      const url = new URL(u);
      return url.username === '' && url.password === '';
    }, 'must not carry credentials; put the token in PROVISIONING_HTTP_TOKEN')
    .optional(),
  PROVISIONING_HTTP_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces (it is sent as a bearer token)')
    .optional(),
  // Below the provisioning activity's 30 s start-to-close, so the request gives up first.
  PROVISIONING_HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(25_000).default(10_000),
});

export function loadConfig(env: Env = process.env): AppConfig {
  const parsed = schema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '(environment)');
      const shown = NOT_ECHOED.has(name) ? '' : ` (got ${JSON.stringify(env[name])})`;
      problems.push(`${name}: ${issue.message}${shown}`);
    }
  }

  if (env.STRIPE_SECRET_KEY?.includes('_live_') && env.STRIPE_ALLOW_LIVE_KEY !== 'true') {
    problems.push('STRIPE_SECRET_KEY: is a live-mode key; set STRIPE_ALLOW_LIVE_KEY=true to move real money');
  }

  if (env.DATABASE_URL && env.PROVISIONING_HTTP_URL) {
    problems.push(
      'DATABASE_URL and PROVISIONING_HTTP_URL: both are set; provisioning uses one backend, unset one of them',
    );
  }
  if (env.PROVISIONING_HTTP_TOKEN && !env.PROVISIONING_HTTP_URL) {
    problems.push('PROVISIONING_HTTP_TOKEN: is set but PROVISIONING_HTTP_URL is not');
  }

  const external = Boolean(env.TEMPORAL_ADDRESS || env.TEMPORAL_PROFILE || env.TEMPORAL_CONFIG_FILE);
  let connect: ClientConnectConfig | undefined;
  if (external) {
    try {
      const overrideEnvVars = Object.fromEntries(
        Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
      );
      connect = loadClientConnectConfig({ overrideEnvVars, profile: env.TEMPORAL_PROFILE });
    } catch (err) {
      problems.push(`TEMPORAL_* / envconfig profile: ${envconfigProblem(err, env)}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const v = parsed.data;

  const dataDir = path.resolve(v.DATA_DIR);
  let apiBase: StripeConfig['apiBase'];
  if (v.STRIPE_API_BASE) {
    const u = new URL(v.STRIPE_API_BASE);
    const protocol = u.protocol === 'https:' ? 'https' : 'http';
    apiBase = { host: u.hostname, port: u.port ? Number(u.port) : protocol === 'https' ? 443 : 80, protocol };
  }
  return {
    dataDir,
    logLevel: v.LOG_LEVEL,
    http: { host: v.HTTP_HOST, port: v.HTTP_PORT },
    temporal: {
      mode: external ? 'external' : 'embedded',
      connect,
      namespace: connect?.namespace ?? v.TEMPORAL_NAMESPACE,
      taskQueue: v.TEMPORAL_TASK_QUEUE,
      embedded: {
        port: v.TEMPORAL_EMBEDDED_PORT,
        uiPort: v.TEMPORAL_EMBEDDED_UI_PORT,
        dbFile: path.join(dataDir, 'temporal.sqlite'),
      },
      connectTimeoutMs: v.TEMPORAL_CONNECT_TIMEOUT_MS,
    },
    worker: {
      shutdownGraceMs: v.WORKER_SHUTDOWN_GRACE_MS,
      maxConcurrentActivityTaskExecutions: v.WORKER_MAX_CONCURRENT_ACTIVITY_TASKS,
      maxConcurrentWorkflowTaskExecutions: v.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      workflowThreadPoolSize: v.WORKER_WORKFLOW_THREADS,
    },
    stripe: {
      mode: v.STRIPE_SECRET_KEY ? 'stripe' : 'emulator',
      secretKey: v.STRIPE_SECRET_KEY ?? EMULATOR_SECRET_KEY,
      emulatorPort: v.STRIPE_EMULATOR_PORT,
      apiBase,
      webhookSecrets: v.STRIPE_WEBHOOK_SECRETS ?? [],
      requestTimeoutMs: v.STRIPE_TIMEOUT_MS,
    },
    observability: {
      prometheus: v.METRICS_PORT === undefined ? undefined : { host: v.METRICS_HOST, port: v.METRICS_PORT },
      visibilityIntervalMs: v.METRICS_VISIBILITY_INTERVAL_MS,
      tracing: {
        // OpenTelemetry's own rule: an endpoint alone means "export there".
        exporter:
          v.OTEL_TRACES_EXPORTER ??
          (v.OTEL_EXPORTER_OTLP_ENDPOINT || v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'otlp' : 'none'),
        otlpEndpoint:
          v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
          (v.OTEL_EXPORTER_OTLP_ENDPOINT
            ? `${v.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`
            : 'http://localhost:4318/v1/traces'),
        serviceName: v.OTEL_SERVICE_NAME,
      },
    },
    provisioning: {
      backend: v.DATABASE_URL ? 'postgres' : v.PROVISIONING_HTTP_URL ? 'http' : 'sqlite',
      sqlitePath: v.PROVISIONING_SQLITE_PATH ?? path.join(dataDir, 'provisioning.sqlite'),
      databaseUrl: v.DATABASE_URL,
      http: v.PROVISIONING_HTTP_URL
        ? {
            url: v.PROVISIONING_HTTP_URL,
            token: v.PROVISIONING_HTTP_TOKEN,
            timeoutMs: v.PROVISIONING_HTTP_TIMEOUT_MS,
          }
        : undefined,
    },
  };
}

/**
 * An envconfig failure, told without secrets: a TOML parse error quotes the offending lines (an
 * `api_key = "…` line would be printed whole), so only its first line and position are kept, and any
 * secret value from the environment is masked.
 */
function envconfigProblem(err: unknown, env: Env): string {
  let message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
  const where = err as { line?: unknown; column?: unknown };
  if (typeof where.line === 'number') message += ` (line ${where.line}, column ${String(where.column)})`;
  for (const name of ['TEMPORAL_API_KEY', 'TEMPORAL_TLS_CLIENT_KEY_DATA', 'TEMPORAL_CODEC_AUTH']) {
    const value = env[name];
    if (value) message = message.split(value).join('[redacted]');
  }
  return message;
}

/** A copy safe to log: secrets replaced by a marker that keeps only the key's mode. */
export function redactConfig(config: AppConfig): unknown {
  const mode = config.stripe.secretKey.includes('_live_') ? 'live' : 'test';
  return {
    ...config,
    stripe: {
      ...config.stripe,
      secretKey: `[redacted ${mode} key]`,
      webhookSecrets: config.stripe.webhookSecrets.map(() => '[redacted]'),
    },
    temporal: { ...config.temporal, connect: config.temporal.connect ? '[envconfig profile]' : undefined },
    provisioning: {
      ...config.provisioning,
      databaseUrl: config.provisioning.databaseUrl === undefined ? undefined : '[redacted]',
      http:
        config.provisioning.http === undefined
          ? undefined
          : {
              ...config.provisioning.http,
              // The query string may carry a key of its own; the origin and path say where.
              url: `${new URL(config.provisioning.http.url).origin}${new URL(config.provisioning.http.url).pathname}`,
              token: config.provisioning.http.token === undefined ? undefined : '[redacted]',
            },
    },
  };
}

/**
 * Variables `@temporalio/envconfig` reads when Temporal is external. They are not in the schema:
 * envconfig parses and validates them (and the TOML profile) itself. `TEMPORAL_GRPC_META_<NAME>`
 * adds one gRPC header per variable.
 */
export const ENVCONFIG_VARIABLES = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_PROFILE',
  'TEMPORAL_CONFIG_FILE',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS',
  'TEMPORAL_TLS_CLIENT_CERT_PATH',
  'TEMPORAL_TLS_CLIENT_CERT_DATA',
  'TEMPORAL_TLS_CLIENT_KEY_PATH',
  'TEMPORAL_TLS_CLIENT_KEY_DATA',
  'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
  'TEMPORAL_TLS_SERVER_CA_CERT_DATA',
  'TEMPORAL_TLS_SERVER_NAME',
  'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION',
  'TEMPORAL_CODEC_ENDPOINT',
  'TEMPORAL_CODEC_AUTH',
  'TEMPORAL_GRPC_META_*',
] as const;

export interface SettingInfo {
  readonly name: string;
  /** The default as written in the environment (`'10000'`), or undefined when unset or derived. */
  readonly default: string | undefined;
  readonly secret: boolean;
  /** `schema`: validated here; `envconfig`: passed through to `@temporalio/envconfig`. */
  readonly source: 'schema' | 'envconfig';
}

/**
 * Every setting the product reads, with its default, for the README's table, `.env.example` and
 * the test that keeps them in step with this module.
 */
export function describeSettings(): readonly SettingInfo[] {
  const fromSchema = Object.entries(schema.shape).map(([name, field]): SettingInfo => {
    const parsed = field.safeParse(undefined);
    const value: unknown = parsed.success ? parsed.data : undefined;
    return {
      name,
      default:
        typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
          ? String(value)
          : value === undefined
            ? undefined
            : JSON.stringify(value),
      secret: SECRET_VARS.has(name),
      source: 'schema',
    };
  });
  const inSchema = new Set(fromSchema.map((s) => s.name));
  const fromEnvconfig = ENVCONFIG_VARIABLES.filter((name) => !inSchema.has(name)).map(
    (name): SettingInfo => ({
      name,
      default: undefined,
      secret: ['TEMPORAL_API_KEY', 'TEMPORAL_TLS_CLIENT_KEY_DATA', 'TEMPORAL_CODEC_AUTH'].includes(name),
      source: 'envconfig',
    }),
  );
  return [...fromSchema, ...fromEnvconfig];
}
