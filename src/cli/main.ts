/**
 * `npm run checkout -- <command>`: the operator CLI. Every command goes through the same client
 * functions as the HTTP intake, so validation and the workflow's own rules apply identically.
 *
 *   start --order-id ID --amount N --currency usd --customer cus_… --payment-method pm_…
 *         --sku SKU [--quantity N]
 *   start-hosted --order-id ID --amount N --currency usd --sku SKU [--quantity N]
 *         --success-url URL --cancel-url URL [--customer cus_…] [--payment-method-types card,us_bank_account]
 *   status ORDER_ID
 *   list [--state STATE] [--needs-attention] [--limit N]
 *   retry-payment ORDER_ID --payment-method pm_… --actor WHO --reason WHY
 *   cancel ORDER_ID --actor WHO --reason WHY
 *   resolve ORDER_ID --outcome recheck|abandon|keep_payment --actor WHO --reason WHY
 *   refund ORDER_ID [--amount N] [--request-id ID] --actor WHO --reason WHY
 *   retry-provisioning ORDER_ID --actor WHO --reason WHY
 *   reconcile [--now [--dry-run]]
 *   resolve-case PAYMENT_INTENT_ID --outcome refunded|provisioned|no_action --actor WHO --reason WHY
 *
 * Every command takes `--json` for machine-readable output. Exit codes: 0 done; 1 the operation
 * failed (unknown order, refused by the workflow, Temporal unreachable); 2 bad usage or input, in
 * which case the message names each bad argument and nothing was sent to Temporal.
 *
 * It connects with the same configuration as everything else (`TEMPORAL_ADDRESS`, profiles, or the
 * embedded server's port that `npm start` runs).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  Client,
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import {
  CheckoutConflictError,
  InvalidCheckoutInputError,
  cancelCheckout,
  createTemporalConnection,
  RefundNotAllowedError,
  RefundRequestConflictError,
  getCheckoutStatus,
  getCheckoutStatusWithRefunds,
  listCheckouts,
  refundCheckout,
  resolveCheckout,
  retryPayment,
  retryProvisioning,
  startCheckout,
  startHostedCheckout,
  type CheckoutListEntry,
} from '../client';
import { ConfigError, loadConfig, type AppConfig } from '../config';
import {
  InvalidCaseRequestError,
  listReconciliationCases,
  resolveReconciliationCase,
  type CaseListEntry,
} from '../reconciler/cases';
import {
  latestReconcileRun,
  reconcilerScheduleExists,
  runReconcilerOnce,
  triggerReconcilerNow,
  type ReconcileRun,
} from '../reconciler/schedule';
import {
  SEARCHABLE_STATES,
  RECONCILER_FINDING_KINDS,
  validateCaseResolveRequest,
  validateCancelRequest,
  orderIdProblems,
  validateCheckoutInput,
  validateHostedCheckoutInput,
  validateRefundRequest,
  validateResolveRequest,
  validateRetryPaymentRequest,
  validateRetryProvisioningRequest,
  type CheckoutInput,
  type CheckoutStatus,
  type HostedCheckoutInput,
  type CaseResolution,
  type RefundEntry,
  type RefundResult,
  type ResolveOutcome,
  type Validation,
} from '../workflows/definitions';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export const USAGE = `Usage: npm run checkout -- <command> [options]

Commands:
  start --order-id ID --amount N --currency usd --customer cus_... --payment-method pm_...
        --sku SKU [--quantity N]          start the checkout for an order (or show the existing one)
  start-hosted --order-id ID --amount N --currency usd --sku SKU [--quantity N]
        --success-url URL --cancel-url URL [--customer cus_...] [--payment-method-types card,...]
                                          start a hosted checkout and print the payment page URL
  status ORDER_ID                         the checkout's state, PaymentIntents and audit trail
  list [--state STATE] [--needs-attention] [--limit N]
                                          checkouts from Temporal visibility (newest first)
  retry-payment ORDER_ID --payment-method pm_... --actor WHO --reason WHY
                                          retry a declined checkout with a new card
  cancel ORDER_ID --actor WHO --reason WHY
                                          cancel an unpaid checkout
  resolve ORDER_ID --outcome recheck|abandon|keep_payment --actor WHO --reason WHY
                                          decide a checkout in needs_attention (keep_payment:
                                          stop the automatic refund after provisioning failed)
  refund ORDER_ID [--amount N] [--request-id ID] --actor WHO --reason WHY
                                          refund a paid order, in full or N minor units; run
                                          again with the same --request-id after a lost answer
                                          (without one, an id is made and printed first)
  retry-provisioning ORDER_ID --actor WHO --reason WHY
                                          retry provisioning after it failed for good
  reconcile [--now [--dry-run]]           the reconciler's latest findings and open cases; --now
                                          runs it (through its schedule) and waits; --dry-run
                                          finds without fixing
  resolve-case PAYMENT_INTENT_ID --outcome refunded|provisioned|no_action --actor WHO --reason WHY
                                          close a reconciliation case after acting on it

Every command accepts --json. Exit codes: 0 ok, 1 operation failed, 2 bad usage (nothing sent).
`;

/** What a parsed command line asks for; built only when every argument is valid. */
export type Command =
  | { readonly name: 'help' }
  | { readonly name: 'start'; readonly input: CheckoutInput; readonly json: boolean }
  | { readonly name: 'start-hosted'; readonly input: HostedCheckoutInput; readonly json: boolean }
  | { readonly name: 'status'; readonly orderId: string; readonly json: boolean }
  | {
      readonly name: 'list';
      readonly state: string | undefined;
      readonly needsAttention: boolean;
      readonly limit: number;
      readonly json: boolean;
    }
  | {
      readonly name: 'retry-payment';
      readonly orderId: string;
      readonly paymentMethodId: string;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    }
  | {
      readonly name: 'cancel';
      readonly orderId: string;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    }
  | {
      readonly name: 'resolve';
      readonly orderId: string;
      readonly outcome: ResolveOutcome;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    }
  | {
      readonly name: 'refund';
      readonly orderId: string;
      readonly amount: number | undefined;
      /** Undefined: the CLI makes one and prints it before sending. */
      readonly requestId: string | undefined;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    }
  | {
      readonly name: 'retry-provisioning';
      readonly orderId: string;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    }
  | { readonly name: 'reconcile'; readonly now: boolean; readonly dryRun: boolean; readonly json: boolean }
  | {
      readonly name: 'resolve-case';
      readonly paymentIntentId: string;
      readonly outcome: CaseResolution;
      readonly actor: string;
      readonly reason: string;
      readonly json: boolean;
    };

export class UsageError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'UsageError';
  }
}

/** The shared validation names fields as the API spells them; the CLI names its flags. */
const FLAG_FOR_FIELD: Readonly<Record<string, string>> = {
  orderId: 'ORDER_ID / --order-id',
  amount: '--amount',
  currency: '--currency',
  customerId: '--customer',
  paymentMethodId: '--payment-method',
  provision: '--sku/--quantity',
  'provision.sku': '--sku',
  'provision.quantity': '--quantity',
  actor: '--actor',
  reason: '--reason',
  requestId: '--request-id',
  outcome: '--outcome',
  successUrl: '--success-url',
  cancelUrl: '--cancel-url',
  paymentMethodTypes: '--payment-method-types',
};

function asFlags(problems: readonly string[]): string[] {
  return problems.map((p) => {
    const at = p.indexOf(': ');
    if (at < 0) return p;
    const field = p.slice(0, at);
    return `${FLAG_FOR_FIELD[field] ?? field}: ${p.slice(at + 2)}`;
  });
}

function flagOf(problem: string): string {
  return problem.slice(0, Math.max(0, problem.indexOf(':')));
}

function checked<T>(v: Validation<T>): T {
  if (!v.ok) throw new UsageError(asFlags(v.problems));
  return v.value;
}

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'order-id': { type: 'string' },
  amount: { type: 'string' },
  currency: { type: 'string' },
  customer: { type: 'string' },
  'payment-method': { type: 'string' },
  sku: { type: 'string' },
  quantity: { type: 'string' },
  'success-url': { type: 'string' },
  'cancel-url': { type: 'string' },
  'payment-method-types': { type: 'string' },
  state: { type: 'string' },
  'needs-attention': { type: 'boolean' },
  limit: { type: 'string' },
  actor: { type: 'string' },
  reason: { type: 'string' },
  'request-id': { type: 'string' },
  outcome: { type: 'string' },
  now: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Which flags each command accepts; any other is a usage error rather than silently ignored. */
const ALLOWED: Readonly<Record<Exclude<Command['name'], 'help'>, readonly OptionName[]>> = {
  start: ['order-id', 'amount', 'currency', 'customer', 'payment-method', 'sku', 'quantity'],
  'start-hosted': [
    'order-id',
    'amount',
    'currency',
    'customer',
    'sku',
    'quantity',
    'success-url',
    'cancel-url',
    'payment-method-types',
  ],
  status: [],
  list: ['state', 'needs-attention', 'limit'],
  'retry-payment': ['payment-method', 'actor', 'reason'],
  cancel: ['actor', 'reason'],
  resolve: ['outcome', 'actor', 'reason'],
  refund: ['amount', 'request-id', 'actor', 'reason'],
  'retry-provisioning': ['actor', 'reason'],
  reconcile: ['now', 'dry-run'],
  'resolve-case': ['outcome', 'actor', 'reason'],
};

function isCommandName(s: string): s is keyof typeof ALLOWED {
  return Object.prototype.hasOwnProperty.call(ALLOWED, s);
}

/** A whole number from a flag, or a problem naming the flag. */
function integer(problems: string[], flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) {
    problems.push(`--${flag}: must be a whole number (got ${JSON.stringify(value)})`);
    return undefined;
  }
  return Number(value);
}

/**
 * An ORDER_ID argument checked with the intake's own rule (`orderIdProblems`), so an id no checkout
 * can have is refused here, naming the rule, instead of being looked up.
 */
function orderIdArgumentProblems(orderId: string): string[] {
  return orderIdProblems(orderId).map((p) => `ORDER_ID: ${p.slice('orderId: '.length)}`);
}

/** Parses argv (without `node script`) into a command, or throws `UsageError` naming every problem. */
export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError([err instanceof Error ? err.message : String(err)]);
  }
  const { values, positionals } = parsed;
  const [name, ...rest] = positionals;
  if (name === undefined || name === 'help' || values.help === true) return { name: 'help' };
  if (!isCommandName(name)) throw new UsageError([`unknown command ${JSON.stringify(name)}`]);

  const problems: string[] = [];
  for (const key of Object.keys(values) as OptionName[]) {
    if (key !== 'json' && !ALLOWED[name].includes(key)) problems.push(`--${key}: not an option of "${name}"`);
  }
  const json = values.json === true;
  const takesOrderId = name !== 'start' && name !== 'start-hosted' && name !== 'list' && name !== 'reconcile';
  const orderId = rest[0];
  if (takesOrderId && orderId === undefined) {
    problems.push(
      name === 'resolve-case'
        ? 'PAYMENT_INTENT_ID: missing (the case to resolve)'
        : 'ORDER_ID: missing (the order to act on)',
    );
  }
  if (takesOrderId && orderId !== undefined && name !== 'resolve-case')
    problems.push(...orderIdArgumentProblems(orderId));
  const extra = takesOrderId ? rest.slice(1) : rest;
  if (extra.length > 0) problems.push(`unexpected argument(s): ${extra.join(' ')}`);

  const actorReason = { actor: values.actor, reason: values.reason };
  const finish = <C extends Command>(build: () => C): C => {
    if (problems.length > 0) throw new UsageError(problems);
    return build();
  };

  switch (name) {
    case 'start': {
      const amount = integer(problems, 'amount', values.amount);
      const quantity = integer(problems, 'quantity', values.quantity);
      const v = validateCheckoutInput({
        orderId: values['order-id'],
        amount,
        currency: values.currency,
        customerId: values.customer,
        paymentMethodId: values['payment-method'],
        provision: { sku: values.sku, quantity: quantity ?? 1 },
      });
      // A flag that is not a number at all is reported once, by `integer`.
      const reported = new Set(problems.map(flagOf));
      if (!v.ok) problems.push(...asFlags(v.problems).filter((p) => !reported.has(flagOf(p))));
      return finish(() => ({ name, input: checked(v), json }));
    }
    case 'start-hosted': {
      const amount = integer(problems, 'amount', values.amount);
      const quantity = integer(problems, 'quantity', values.quantity);
      const types = values['payment-method-types'];
      const v = validateHostedCheckoutInput({
        orderId: values['order-id'],
        amount,
        currency: values.currency,
        ...(values.customer === undefined ? {} : { customerId: values.customer }),
        provision: { sku: values.sku, quantity: quantity ?? 1 },
        successUrl: values['success-url'],
        cancelUrl: values['cancel-url'],
        ...(types === undefined ? {} : { paymentMethodTypes: types.split(',').map((t) => t.trim()) }),
      });
      const reported = new Set(problems.map(flagOf));
      if (!v.ok) problems.push(...asFlags(v.problems).filter((p) => !reported.has(flagOf(p))));
      return finish(() => ({ name, input: checked(v), json }));
    }
    case 'status':
      return finish(() => ({ name, orderId: orderId ?? '', json }));
    case 'list': {
      const limit = integer(problems, 'limit', values.limit) ?? 20;
      if (limit < 1 || limit > 1000) problems.push('--limit: must be from 1 to 1000');
      const state =
        values.state === undefined ? undefined : SEARCHABLE_STATES.find((s) => s === values.state);
      if (values.state !== undefined && state === undefined) {
        problems.push(`--state: must be one of ${SEARCHABLE_STATES.join(', ')}`);
      }
      return finish(() => ({ name, state, needsAttention: values['needs-attention'] === true, limit, json }));
    }
    case 'retry-payment': {
      const v = validateRetryPaymentRequest({ paymentMethodId: values['payment-method'], ...actorReason });
      if (!v.ok) problems.push(...asFlags(v.problems));
      return finish(() => ({ name, orderId: orderId ?? '', ...checked(v), json }));
    }
    case 'cancel': {
      const v = validateCancelRequest(actorReason);
      if (!v.ok) problems.push(...asFlags(v.problems));
      return finish(() => ({ name, orderId: orderId ?? '', ...checked(v), json }));
    }
    case 'resolve': {
      const v = validateResolveRequest({ outcome: values.outcome, ...actorReason });
      if (!v.ok) problems.push(...asFlags(v.problems));
      return finish(() => ({ name, orderId: orderId ?? '', ...checked(v), json }));
    }
    case 'refund': {
      const amount = integer(problems, 'amount', values.amount);
      const requestId = values['request-id'];
      const v = validateRefundRequest({
        ...(amount === undefined ? {} : { amount }),
        ...(requestId === undefined ? {} : { requestId }),
        ...actorReason,
      });
      // A flag that is not a number at all is reported once, by `integer`.
      const reported = new Set(problems.map(flagOf));
      if (!v.ok) problems.push(...asFlags(v.problems).filter((p) => !reported.has(flagOf(p))));
      return finish(() => {
        const { actor, reason } = checked(v);
        return { name, orderId: orderId ?? '', amount, requestId, actor, reason, json };
      });
    }
    case 'retry-provisioning': {
      const v = validateRetryProvisioningRequest(actorReason);
      if (!v.ok) problems.push(...asFlags(v.problems));
      return finish(() => ({ name, orderId: orderId ?? '', ...checked(v), json }));
    }
    case 'reconcile': {
      const now = values.now === true;
      const dryRun = values['dry-run'] === true;
      if (dryRun && !now) problems.push('--dry-run: only with --now (a dry run is a run)');
      return finish(() => ({ name, now, dryRun, json }));
    }
    case 'resolve-case': {
      if (orderId !== undefined && !/^pi_[A-Za-z0-9_]{1,250}$/.test(orderId)) {
        problems.push('PAYMENT_INTENT_ID: must be a PaymentIntent id (pi_…)');
      }
      const v = validateCaseResolveRequest({ outcome: values.outcome, ...actorReason });
      if (!v.ok) problems.push(...asFlags(v.problems));
      return finish(() => ({ name, paymentIntentId: orderId ?? '', ...checked(v), json }));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Output

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function formatStatus(status: CheckoutStatus): string {
  const facts: [string, string][] = [
    ['order', status.orderId],
    ['workflow', status.workflowId],
    ['state', status.state],
    ['amount', `${status.amount} ${status.currency}`],
    ['attempt (generation)', String(status.generation)],
    ['PaymentIntent', status.paymentIntentId ?? '-'],
    ['all PaymentIntents', status.paymentIntentIds.join(', ') || '-'],
    ['provisioned', status.entitlement ? status.entitlement.entitlementId : 'no'],
  ];
  if (status.checkoutSession) {
    facts.push(['mode', 'hosted']);
    facts.push([
      'Checkout Session',
      `${status.checkoutSession.id} (${status.checkoutSession.status}, ${status.checkoutSession.paymentStatus})`,
    ]);
    if (status.checkoutSession.url) facts.push(['payment page', status.checkoutSession.url]);
  }
  if (status.decline) {
    facts.push([
      'decline',
      `${status.decline.code}${status.decline.declineCode ? ` (${status.decline.declineCode})` : ''}`,
    ]);
  }
  if (status.needsAttention) {
    facts.push(['needs attention', `${status.needsAttention.reason} since ${status.needsAttention.since}`]);
    facts.push(['detail', status.needsAttention.detail]);
    facts.push(['new card allowed', status.needsAttention.retryAllowed ? 'yes' : 'no']);
  }
  const auto = status.automaticRefund;
  if (auto) {
    facts.push([
      'automatic refund',
      auto.status === 'scheduled'
        ? `due at ${auto.dueAt}`
        : auto.status === 'stopped'
          ? `stopped by ${auto.actor} at ${auto.at}: ${auto.reason}`
          : `done at ${auto.at} (${auto.refundId})`,
    ]);
  }
  const refunds = status.refunds ?? [];
  if (refunds.length > 0 || (status.refundedAmount ?? 0) > 0) {
    facts.push(['refunded', `${status.refundedAmount ?? 0} of ${status.amount} ${status.currency}`]);
  }
  const width = Math.max(...facts.map(([k]) => k.length));
  const audit = formatTable(
    ['at', 'actor', 'action', 'reason'],
    status.audit.map((a) => [a.at, a.actor, a.action, a.reason]),
  );
  const refundTable = refunds.length > 0 ? `\n\nRefunds:\n${formatRefunds(refunds)}` : '';
  return `${facts.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}${refundTable}\n\nAudit trail:\n${audit}`;
}

export function formatRefunds(refunds: readonly RefundEntry[]): string {
  return formatTable(
    ['at', 'refund', 'amount', 'full', 'actor', 'reason'],
    refunds.map((r) => [r.at, r.refundId, String(r.amount), r.full ? 'yes' : 'no', r.actor, r.reason]),
  );
}

export function formatRefundResult(result: RefundResult): string {
  const r = result.refund;
  return [
    result.replayed
      ? `Already refunded for this request id: ${r.amount} ${result.currency} of order ${result.orderId} (${r.refundId}); nothing new was refunded.`
      : `Refunded ${r.amount} ${result.currency} of order ${result.orderId} (${r.refundId}) by ${result.workflowId}.`,
    `Refunded ${result.refundedAmount} of ${result.amount} ${result.currency}; ${result.remainingAmount} left` +
      `${r.full ? '; the entitlement is revoked' : ''}.`,
    '',
    formatRefunds(result.refunds),
  ].join('\n');
}

export function formatList(entries: readonly CheckoutListEntry[]): string {
  if (entries.length === 0) return 'No checkouts match.';
  return formatTable(
    ['order', 'state', 'PaymentIntent', 'needs attention since', 'workflow', 'started'],
    entries.map((e) => [
      e.orderId ?? e.workflowId,
      e.state ?? '-',
      e.paymentIntentId ?? '-',
      e.needsAttentionSince?.toISOString() ?? '-',
      e.workflowStatus,
      e.startTime.toISOString(),
    ]),
  );
}

export function formatReconcileRun(run: ReconcileRun | undefined): string {
  if (run === undefined) return 'The reconciler has not run yet.';
  const head = `Reconcile run ${run.workflowId}: ${run.status}`;
  const r = run.result;
  if (r === undefined) return head;
  const counts = RECONCILER_FINDING_KINDS.map((k) => `${k} ${r.counts[k]} (fixed ${r.fixes[k]})`).join(', ');
  const lines = [
    head,
    `  ${r.startedAt} to ${r.finishedAt}${r.dryRun ? ' (dry run: nothing changed)' : ''}`,
    `  read ${r.scanned} PaymentIntents created since ${new Date(r.createdGte * 1000).toISOString()}, ` +
      `${r.withCheckoutMetadata} from checkouts`,
    `  findings: ${counts}`,
  ];
  if (r.findings.length === 0) return `${lines.join('\n')}\n\nNo findings.`;
  const table = formatTable(
    ['kind', 'PaymentIntent', 'order', 'amount', 'checkout', 'outcome', 'case / note'],
    r.findings.map((f) => [
      f.kind,
      f.paymentIntentId,
      f.orderId,
      `${f.amount} ${f.currency}`,
      f.checkout,
      f.outcome,
      f.caseWorkflowId ?? f.note ?? '-',
    ]),
  );
  const more = r.findingsNotListed > 0 ? `\n(${r.findingsNotListed} more not listed)` : '';
  return `${lines.join('\n')}\n\n${table}${more}`;
}

export function formatCases(cases: readonly CaseListEntry[]): string {
  if (cases.length === 0) return 'No open reconciliation cases.';
  return formatTable(
    ['case', 'order', 'PaymentIntent', 'needs attention since'],
    cases.map((c) => [
      c.workflowId,
      c.orderId ?? '-',
      c.paymentIntentId ?? '-',
      c.needsAttentionSince?.toISOString() ?? '-',
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Running

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface CliDeps {
  readonly io: CliIo;
  /** Default: `loadConfig()`. */
  readonly config?: () => AppConfig;
  /** Default: a client connected from config; closed when the command ends. */
  readonly client?: Client;
}

/** Known failures as one line for the operator; undefined for anything unexpected. */
function failureMessage(err: unknown, orderId: string | undefined): string | undefined {
  if (err instanceof WorkflowNotFoundError) return `No checkout for order ${orderId ?? err.workflowId}`;
  if (err instanceof WorkflowUpdateFailedError)
    return `Refused by the checkout: ${err.cause?.message ?? err.message}`;
  if (err instanceof CheckoutConflictError)
    return `${err.message}; use a new order id for a different purchase`;
  if (err instanceof InvalidCheckoutInputError) return err.message;
  if (err instanceof RefundNotAllowedError) return err.message;
  if (err instanceof RefundRequestConflictError) return `${err.message} (--request-id)`;
  if (err instanceof InvalidCaseRequestError) return err.message;
  if (err instanceof ScheduleNotFoundError) {
    return 'There is no reconciler schedule (npm start creates it); run once with "reconcile --now"';
  }
  return undefined;
}

async function execute(
  command: Exclude<Command, { name: 'help' }>,
  client: Client,
  config: AppConfig,
  io: CliIo,
): Promise<void> {
  const print = (value: unknown, text: () => string): void =>
    io.out(command.json ? JSON.stringify(value, null, 2) : text());
  switch (command.name) {
    case 'start': {
      const started = await startCheckout(client, command.input, { taskQueue: config.temporal.taskQueue });
      const status = await getCheckoutStatus(client, command.input.orderId);
      print(
        status,
        () => `Checkout ${started.workflowId} for order ${command.input.orderId}\n\n${formatStatus(status)}`,
      );
      return;
    }
    case 'start-hosted': {
      const started = await startHostedCheckout(client, command.input, {
        taskQueue: config.temporal.taskQueue,
      });
      print(started, () =>
        [
          `Hosted checkout ${started.workflowId} for order ${command.input.orderId} ` +
            `(${started.created ? 'started' : 'already existed'}, state ${started.state})`,
          started.sessionPending
            ? `The Checkout Session is still being created (Stripe is slow): \`status\` shows the payment page once it exists.`
            : started.url === null
              ? `No payment page: the Checkout Session ${started.sessionId ?? '-'} is no longer open.`
              : `Pay here: ${started.url}`,
        ].join('\n'),
      );
      return;
    }
    case 'status': {
      const status = await getCheckoutStatusWithRefunds(client, command.orderId);
      print(status, () => formatStatus(status));
      return;
    }
    case 'list': {
      const entries = await listCheckouts(client, {
        limit: command.limit,
        ...(command.state === undefined ? {} : { state: command.state }),
        ...(command.needsAttention ? { needsAttention: true } : {}),
      });
      print(entries, () => formatList(entries));
      return;
    }
    case 'retry-payment': {
      const { orderId, paymentMethodId, actor, reason } = command;
      const status = await retryPayment(client, orderId, { paymentMethodId, actor, reason });
      print(status, () => `Retry accepted.\n\n${formatStatus(status)}`);
      return;
    }
    case 'cancel': {
      const { orderId, actor, reason } = command;
      const status = await cancelCheckout(client, orderId, { actor, reason });
      print(status, () => `Cancel accepted.\n\n${formatStatus(status)}`);
      return;
    }
    case 'resolve': {
      const { orderId, outcome, actor, reason } = command;
      const status = await resolveCheckout(client, orderId, { outcome, actor, reason });
      print(status, () => `Resolve (${outcome}) accepted.\n\n${formatStatus(status)}`);
      return;
    }
    case 'refund': {
      const { orderId, amount, actor, reason } = command;
      // Without --request-id, one is made for this command and printed before anything is sent:
      // if the answer is lost, running again with it refunds once.
      const requestId = command.requestId ?? randomUUID();
      if (command.requestId === undefined) {
        io.err(
          `Refund request id: ${requestId} (if no answer arrives, run again with --request-id ${requestId})`,
        );
      }
      const result = await refundCheckout(
        client,
        orderId,
        { ...(amount === undefined ? {} : { amount }), requestId, actor, reason },
        { taskQueue: config.temporal.taskQueue },
      );
      print(result, () => formatRefundResult(result));
      return;
    }
    case 'retry-provisioning': {
      const { orderId, actor, reason } = command;
      const status = await retryProvisioning(client, orderId, { actor, reason });
      print(status, () => `Retry of provisioning accepted.\n\n${formatStatus(status)}`);
      return;
    }
    case 'reconcile': {
      if (command.now) {
        const taskQueue = config.temporal.taskQueue;
        const run = command.dryRun
          ? await runReconcilerOnce(client, { taskQueue, options: { dryRun: true } })
          : (await reconcilerScheduleExists(client))
            ? await triggerReconcilerNow(client)
            : await runReconcilerOnce(client, { taskQueue });
        print(run, () => formatReconcileRun(run));
        return;
      }
      const run = await latestReconcileRun(client);
      const openCases = await listReconciliationCases(client, { open: true, limit: 100 });
      print(
        { run, openCases },
        () => `${formatReconcileRun(run)}\n\nOpen reconciliation cases:\n${formatCases(openCases)}`,
      );
      return;
    }
    case 'resolve-case': {
      const { paymentIntentId, outcome, actor, reason } = command;
      let status;
      try {
        status = await resolveReconciliationCase(client, paymentIntentId, { outcome, actor, reason });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          throw new InvalidCaseRequestError([
            `no open reconciliation case for ${paymentIntentId} (none exists, or it is already resolved)`,
          ]);
        }
        throw err;
      }
      print(status, () => `Case ${status.caseWorkflowId} resolved (${outcome}) by ${actor}.`);
      return;
    }
  }
}

/** Runs one command line and returns the exit code; never exits the process itself. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const { io } = deps;
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`${err.problems.map((p) => `error: ${p}`).join('\n')}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (command.name === 'help') {
    io.out(USAGE);
    return EXIT.ok;
  }

  let config: AppConfig;
  try {
    config = (deps.config ?? (() => loadConfig()))();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(err.message);
    return EXIT.usage;
  }
  let client = deps.client;
  let close = async (): Promise<void> => {};
  if (client === undefined) {
    try {
      const connection = await createTemporalConnection(config.temporal);
      close = () => connection.close();
      client = new Client({ connection, namespace: config.temporal.namespace });
    } catch (err) {
      const where =
        config.temporal.mode === 'embedded'
          ? `127.0.0.1:${config.temporal.embedded.port} (is "npm start" running?)`
          : 'the configured Temporal';
      io.err(`Could not reach Temporal at ${where}: ${err instanceof Error ? err.message : String(err)}`);
      return EXIT.failed;
    }
  }
  try {
    await execute(command, client, config, io);
    return EXIT.ok;
  } catch (err) {
    const orderId =
      'orderId' in command ? command.orderId : command.name === 'start' ? command.input.orderId : undefined;
    let message = failureMessage(err, orderId);
    if (err instanceof WorkflowNotFoundError && orderId !== undefined && command.name !== 'status') {
      // Updates cannot reach a closed workflow; say that it ended rather than "no checkout".
      const ended = await getCheckoutStatus(client, orderId).catch(() => undefined);
      if (ended) message = `Refused by the checkout: it already ended (${ended.state})`;
    }
    if (message === undefined) throw err;
    io.err(message);
    return EXIT.failed;
  } finally {
    await close();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2), {
    io: { out: (t) => console.log(t), err: (t) => console.error(t) },
  }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error('checkout CLI failed:', err);
      process.exit(EXIT.failed);
    },
  );
}
