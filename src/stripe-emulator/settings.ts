/**
 * The emulator's tunable behaviour, settable at start and at runtime through
 * `POST /_emulator/config`. One schema validates both paths; unknown keys are rejected.
 */
import { z } from 'zod';

export interface EmulatorSettings {
  /** Seconds before a new or changed PaymentIntent shows up in search. Default 0. */
  searchLagSeconds: number;
  /** Seconds of emulator clock before an asynchronous payment (bank debit) settles. Default 3. */
  asyncSettleSeconds: number;
  /** Seconds an idempotency key is kept before it is pruned. Default 24 h. */
  idempotencyTtlSeconds: number;
}

export const DEFAULT_SETTINGS: Readonly<EmulatorSettings> = {
  searchLagSeconds: 0,
  asyncSettleSeconds: 3,
  idempotencyTtlSeconds: 24 * 60 * 60,
};

const nonNegativeSeconds = z.number().finite().min(0);

export const settingsPatchSchema = z.strictObject({
  searchLagSeconds: nonNegativeSeconds.optional(),
  asyncSettleSeconds: nonNegativeSeconds.optional(),
  idempotencyTtlSeconds: nonNegativeSeconds.optional(),
});

export type SettingsPatch = z.infer<typeof settingsPatchSchema>;

/** Validates a patch; throws an Error listing every problem. */
export function parseSettingsPatch(input: unknown): SettingsPatch {
  const result = settingsPatchSchema.safeParse(input);
  if (!result.success) {
    throw new Error(
      result.error.issues.map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`).join('; '),
    );
  }
  return result.data;
}

export function applySettingsPatch(settings: EmulatorSettings, patch: SettingsPatch): void {
  if (patch.searchLagSeconds !== undefined) settings.searchLagSeconds = patch.searchLagSeconds;
  if (patch.asyncSettleSeconds !== undefined) settings.asyncSettleSeconds = patch.asyncSettleSeconds;
  if (patch.idempotencyTtlSeconds !== undefined) settings.idempotencyTtlSeconds = patch.idempotencyTtlSeconds;
}
