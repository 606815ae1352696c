/**
 * The one module that workflow code, the worker, the client and the tests all share: the task
 * queue, search attributes, messages (signals, queries, updates) and result types. No string in
 * here is written twice anywhere else.
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const TASK_QUEUE = 'checkout';

export const SEARCH_ATTRIBUTE_TYPES = {
  CheckoutState: 'Keyword',
  OrderId: 'Keyword',
  StripePaymentIntentId: 'Keyword',
  NeedsAttentionSince: 'Datetime',
} as const;

export const CheckoutStateAttr = defineSearchAttributeKey('CheckoutState', 'KEYWORD');
export const OrderIdAttr = defineSearchAttributeKey('OrderId', 'KEYWORD');
export const StripePaymentIntentIdAttr = defineSearchAttributeKey('StripePaymentIntentId', 'KEYWORD');
export const NeedsAttentionSinceAttr = defineSearchAttributeKey('NeedsAttentionSince', 'DATETIME');
