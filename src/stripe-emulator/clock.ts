/**
 * The emulator's clock: real time plus an offset that tests move forward with `advance`. Everything
 * time-based in the emulator (idempotency key expiry, search indexing lag, asynchronous settlement,
 * `created` timestamps) reads this clock, so a test can jump 24 hours without waiting, while real
 * time keeps passing on it too.
 */
export class Clock {
  private offsetMs = 0;

  constructor(private readonly realNowMs: () => number = Date.now) {}

  /** Emulator time in milliseconds since the Unix epoch. */
  nowMs(): number {
    return this.realNowMs() + this.offsetMs;
  }

  /** Emulator time in (fractional) seconds since the Unix epoch. */
  now(): number {
    return this.nowMs() / 1000;
  }

  /** Emulator time in whole seconds, as Stripe's `created` fields carry it. */
  unix(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  /** How far the clock has been advanced beyond real time, in seconds. */
  offsetSeconds(): number {
    return this.offsetMs / 1000;
  }

  /** Moves the clock forward. Going backwards would break expiry ordering, so it is refused. */
  advance(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) {
      throw new RangeError(
        `clock can only advance by a finite, non-negative number of seconds, got ${seconds}`,
      );
    }
    this.offsetMs += seconds * 1000;
  }

  /** Back to real time (used by the emulator's reset). */
  resetOffset(): void {
    this.offsetMs = 0;
  }
}
