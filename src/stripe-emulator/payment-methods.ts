/**
 * Stripe's documented test PaymentMethods and what each does on confirm. Using one (for example
 * `payment_method: 'pm_card_visa'`) creates a fresh PaymentMethod object (`pm_…`), as Stripe does,
 * and that object keeps the behaviour when reused.
 *
 * Declines come in both spellings Stripe accepts, `pm_card_chargeDeclined…` and
 * `pm_card_visa_chargeDeclined…`. The bank-account methods are Stripe's ACH Direct Debit test
 * tokens (`pm_usBankAccount_success`, `pm_usBankAccount_accountClosed`, …): they go to `processing`
 * and settle later on the emulator clock.
 */
import { type Clock } from './clock';
import { resourceMissing } from './errors';
import { newId } from './ids';

export type PaymentMethodBehaviour =
  | { readonly kind: 'succeed' }
  | {
      readonly kind: 'decline';
      readonly code: string;
      readonly declineCode: string;
      readonly message: string;
      readonly param?: string;
    }
  | { readonly kind: 'authenticate' }
  | { readonly kind: 'async_succeed' }
  | { readonly kind: 'async_fail'; readonly code: string; readonly message: string };

interface TestCard {
  readonly type: 'card';
  readonly brand: string;
  readonly last4: string;
  readonly funding: 'credit' | 'debit';
  readonly behaviour: PaymentMethodBehaviour;
}

interface TestBankAccount {
  readonly type: 'us_bank_account';
  readonly last4: string;
  readonly behaviour: PaymentMethodBehaviour;
}

type TestPaymentMethod = TestCard | TestBankAccount;

const SUCCEED: PaymentMethodBehaviour = { kind: 'succeed' };

function card(brand: string, last4: string, behaviour: PaymentMethodBehaviour = SUCCEED): TestCard {
  return { type: 'card', brand, last4, funding: 'credit', behaviour };
}

const DECLINES: Readonly<Record<string, { last4: string; behaviour: PaymentMethodBehaviour }>> = {
  chargeDeclined: {
    last4: '0002',
    behaviour: {
      kind: 'decline',
      code: 'card_declined',
      declineCode: 'generic_decline',
      message: 'Your card was declined.',
    },
  },
  chargeDeclinedInsufficientFunds: {
    last4: '9995',
    behaviour: {
      kind: 'decline',
      code: 'card_declined',
      declineCode: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
    },
  },
  chargeDeclinedLostCard: {
    last4: '9987',
    behaviour: {
      kind: 'decline',
      code: 'card_declined',
      declineCode: 'lost_card',
      message: 'Your card was declined.',
    },
  },
  chargeDeclinedStolenCard: {
    last4: '9979',
    behaviour: {
      kind: 'decline',
      code: 'card_declined',
      declineCode: 'stolen_card',
      message: 'Your card was declined.',
    },
  },
  chargeDeclinedExpiredCard: {
    last4: '0069',
    behaviour: {
      kind: 'decline',
      code: 'expired_card',
      declineCode: 'expired_card',
      message: 'Your card has expired.',
      param: 'exp_month',
    },
  },
  chargeDeclinedIncorrectCvc: {
    last4: '0127',
    behaviour: {
      kind: 'decline',
      code: 'incorrect_cvc',
      declineCode: 'incorrect_cvc',
      message: "Your card's security code is incorrect.",
      param: 'cvc',
    },
  },
  chargeDeclinedProcessingError: {
    last4: '0119',
    behaviour: {
      kind: 'decline',
      code: 'processing_error',
      declineCode: 'processing_error',
      message: 'An error occurred while processing your card. Try again in a little bit.',
    },
  },
};

function buildTestPaymentMethods(): ReadonlyMap<string, TestPaymentMethod> {
  const table = new Map<string, TestPaymentMethod>([
    ['pm_card_visa', card('visa', '4242')],
    ['pm_card_visa_debit', { ...card('visa', '5556'), funding: 'debit' }],
    ['pm_card_mastercard', card('mastercard', '4444')],
    ['pm_card_amex', card('amex', '8431')],
    ['pm_card_authenticationRequired', card('visa', '3184', { kind: 'authenticate' })],
    ['pm_card_threeDSecure2Required', card('visa', '3220', { kind: 'authenticate' })],
    ['pm_usBankAccount', { type: 'us_bank_account', last4: '6789', behaviour: { kind: 'async_succeed' } }],
    [
      'pm_usBankAccount_success',
      { type: 'us_bank_account', last4: '6789', behaviour: { kind: 'async_succeed' } },
    ],
    [
      'pm_usBankAccount_accountClosed',
      {
        type: 'us_bank_account',
        last4: '1113',
        behaviour: {
          kind: 'async_fail',
          code: 'account_closed',
          message: "The customer's bank account has been closed.",
        },
      },
    ],
    [
      'pm_usBankAccount_noAccount',
      {
        type: 'us_bank_account',
        last4: '1116',
        behaviour: {
          kind: 'async_fail',
          code: 'no_account',
          message: "The customer's bank account could not be located.",
        },
      },
    ],
    [
      'pm_usBankAccount_insufficientFunds',
      {
        type: 'us_bank_account',
        last4: '2227',
        behaviour: {
          kind: 'async_fail',
          code: 'insufficient_funds',
          message: "The customer's account has insufficient funds to cover this payment.",
        },
      },
    ],
  ]);
  for (const [suffix, decline] of Object.entries(DECLINES)) {
    table.set(`pm_card_${suffix}`, card('visa', decline.last4, decline.behaviour));
    table.set(`pm_card_visa_${suffix}`, card('visa', decline.last4, decline.behaviour));
  }
  return table;
}

export const TEST_PAYMENT_METHODS: ReadonlyMap<string, TestPaymentMethod> = buildTestPaymentMethods();

export interface PaymentMethodObject {
  id: string;
  object: 'payment_method';
  type: 'card' | 'us_bank_account';
  billing_details: {
    address: null;
    email: null;
    name: string | null;
    phone: null;
  };
  card?: {
    brand: string;
    country: 'US';
    exp_month: number;
    exp_year: number;
    funding: string;
    last4: string;
  };
  us_bank_account?: {
    account_holder_type: 'individual';
    account_type: 'checking';
    bank_name: 'STRIPE TEST BANK';
    last4: string;
    routing_number: '110000000';
  };
  created: number;
  customer: string | null;
  livemode: false;
  metadata: Record<string, string>;
}

export interface PaymentMethodRecord {
  readonly object: PaymentMethodObject;
  readonly behaviour: PaymentMethodBehaviour;
}

export class PaymentMethods {
  private readonly records = new Map<string, PaymentMethodRecord>();

  constructor(private readonly clock: Clock) {}

  /**
   * Resolves what a request passed as `payment_method`: a test token makes a new PaymentMethod, an
   * existing `pm_…` id is reused. Anything else is `resource_missing`.
   */
  resolve(idOrToken: string, param = 'payment_method'): PaymentMethodRecord {
    const existing = this.records.get(idOrToken);
    if (existing) return existing;
    const test = TEST_PAYMENT_METHODS.get(idOrToken);
    if (!test) throw resourceMissing('PaymentMethod', idOrToken, param);
    const id = newId('pm');
    const object: PaymentMethodObject = {
      id,
      object: 'payment_method',
      type: test.type,
      billing_details: { address: null, email: null, name: null, phone: null },
      created: this.clock.unix(),
      customer: null,
      livemode: false,
      metadata: {},
    };
    if (test.type === 'card') {
      object.card = {
        brand: test.brand,
        country: 'US',
        exp_month: 12,
        exp_year: new Date(this.clock.nowMs()).getUTCFullYear() + 3,
        funding: test.funding,
        last4: test.last4,
      };
    } else {
      object.us_bank_account = {
        account_holder_type: 'individual',
        account_type: 'checking',
        bank_name: 'STRIPE TEST BANK',
        last4: test.last4,
        routing_number: '110000000',
      };
    }
    const record: PaymentMethodRecord = { object, behaviour: test.behaviour };
    this.records.set(id, record);
    return record;
  }

  /** True when `idOrToken` names a test token or a PaymentMethod made from one. */
  isKnown(idOrToken: string): boolean {
    return this.records.has(idOrToken) || TEST_PAYMENT_METHODS.has(idOrToken);
  }

  get(id: string): PaymentMethodRecord | undefined {
    return this.records.get(id);
  }

  clear(): void {
    this.records.clear();
  }
}
