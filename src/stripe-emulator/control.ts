/**
 * The `/_emulator/` control API (no API key): fault rules, the clock, settings, reset, the ledger,
 * request statistics, and completing 3-D Secure or asynchronous payments. Bodies are JSON (the
 * 3-D Secure page posts a form; both are accepted). Errors are `{ error: { type, message } }` 400s.
 */
import qs from 'qs';
import { StripeApiError } from './errors';
import { type SettleOutcome } from './payment-intents';
import { type RawRequest, type RawResponse, type RawRoute } from './router';
import { applySettingsPatch, parseSettingsPatch } from './settings';
import { type EmulatorState } from './state';

function json(body: unknown, status = 200): RawResponse {
  return { status, body: JSON.stringify(body, null, 2) };
}

function badRequest(message: string): StripeApiError {
  return new StripeApiError(400, 'invalid_request_error', message, { storable: false });
}

/** A JSON object body, or a form body (the HTML page), or nothing. */
function readObject(request: RawRequest): Record<string, unknown> {
  const text = request.body.toString('utf8').trim();
  if (text === '') return {};
  const contentType = String(request.headers['content-type'] ?? '');
  if (contentType.includes('application/x-www-form-urlencoded')) {
    return qs.parse(text, { plainObjects: true, depth: 2 });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badRequest('The request body must be a JSON object.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('The request body must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

function readOutcome(body: Record<string, unknown>, required: boolean): SettleOutcome | undefined {
  const outcome = body['outcome'];
  if (outcome === undefined && !required) return undefined;
  if (outcome !== 'succeed' && outcome !== 'fail') {
    throw badRequest(`outcome must be "succeed" or "fail"${required ? '' : ' when given'}.`);
  }
  return outcome;
}

function wrap<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof StripeApiError) throw error;
    if (error instanceof Error) throw badRequest(error.message);
    throw error;
  }
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function threeDSecurePage(state: EmulatorState, id: string): RawResponse {
  const pi = state.paymentIntents.retrieve(id);
  const action = `/_emulator/payment_intents/${encodeURIComponent(pi.id)}/authenticate`;
  const button = (outcome: SettleOutcome, label: string): string =>
    `<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="outcome" value="${outcome}"><button type="submit" id="${outcome}">${label}</button></form>`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>3D Secure test page</title></head>
<body>
<h1>3D Secure authentication (Stripe emulator)</h1>
<p>PaymentIntent <code>${escapeHtml(pi.id)}</code>, ${pi.amount} ${escapeHtml(pi.currency)}, status <code>${pi.status}</code>.</p>
${pi.status === 'requires_action' ? `${button('succeed', 'Complete authentication')}${button('fail', 'Fail authentication')}` : '<p>Nothing to authenticate.</p>'}
</body></html>`;
  return { status: 200, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: html };
}

export function controlRoutes(state: EmulatorState): RawRoute[] {
  return [
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/faults',
      handler: (req) => json(wrap(() => state.faults.add(readObject(req)))),
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/faults',
      handler: () => json({ data: state.faults.list() }),
    },
    {
      kind: 'raw',
      method: 'DELETE',
      pattern: '/_emulator/faults',
      handler: (req) => json({ deleted: state.faults.remove(req.query.get('id') ?? undefined) }),
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/clock',
      handler: () => json({ now: state.clock.now(), offset_seconds: state.clock.offsetSeconds() }),
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/clock/advance',
      handler: (req) => {
        const seconds = readObject(req)['seconds'];
        const value = typeof seconds === 'string' ? Number(seconds) : seconds;
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
          throw badRequest('seconds must be a non-negative number.');
        }
        state.advanceClock(value);
        return json({ now: state.clock.now(), offset_seconds: state.clock.offsetSeconds() });
      },
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/reset',
      handler: () => {
        state.reset();
        return json({ reset: true });
      },
    },
    { kind: 'raw', method: 'GET', pattern: '/_emulator/config', handler: () => json(state.settings) },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/config',
      handler: (req) => {
        wrap(() => applySettingsPatch(state.settings, parseSettingsPatch(readObject(req))));
        return json(state.settings);
      },
    },
    { kind: 'raw', method: 'GET', pattern: '/_emulator/ledger', handler: () => json(state.ledger()) },
    { kind: 'raw', method: 'GET', pattern: '/_emulator/stats', handler: () => json(state.stats()) },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/3ds/:id',
      handler: (req) => threeDSecurePage(state, req.pathParams['id'] ?? ''),
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/payment_intents/:id/authenticate',
      handler: (req) => {
        const fromForm = String(req.headers['content-type'] ?? '').includes(
          'application/x-www-form-urlencoded',
        );
        const outcome = readOutcome(readObject(req), true) ?? 'succeed';
        const pi = state.paymentIntents.authenticate(req.pathParams['id'] ?? '', outcome);
        const returnUrl = state.paymentIntents.returnUrlOf(pi.id);
        if (fromForm && returnUrl !== null) {
          const target = new URL(returnUrl);
          target.searchParams.set('payment_intent', pi.id);
          target.searchParams.set('payment_intent_client_secret', pi.client_secret);
          target.searchParams.set(
            'redirect_status',
            pi.status === 'requires_payment_method' ? 'failed' : 'succeeded',
          );
          return { status: 303, headers: { Location: target.toString() }, body: '' };
        }
        if (fromForm) return threeDSecurePage(state, pi.id);
        return json(pi);
      },
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/payment_intents/:id/settle',
      handler: (req) =>
        json(state.paymentIntents.settle(req.pathParams['id'] ?? '', readOutcome(readObject(req), false))),
    },
  ];
}
