/**
 * How `npm start` and `npm run demo` hear that they should stop: SIGINT (Ctrl-C) or SIGTERM, once,
 * however many copies of it arrive; a real second Ctrl-C means "now".
 */

/** A SIGINT this long after the one that started the shutdown is a second Ctrl-C, not a copy. */
const SECOND_CTRL_C_AFTER_MS = 1_000;

export interface StopSignals {
  /** Resolves with the first SIGINT or SIGTERM. */
  readonly stopped: Promise<NodeJS.Signals>;
  /** Aborted by that same signal: for a start (`startStack`'s `signal`) to stop half-way. */
  readonly signal: AbortSignal;
}

/**
 * Listens for the first SIGINT or SIGTERM, from now on. The listeners stay for the life of the
 * process, so a repeat never meets Node's default action (exit at once). A second Ctrl-C while
 * draining means "now"; but one Ctrl-C often arrives more than once within milliseconds (the
 * terminal signals the whole process group, and npm and tsx forward it to their child as well), so
 * only a SIGINT at least a second after the shutdown began counts as a second one. Repeated SIGTERMs
 * are ignored.
 */
export function stopSignals(): StopSignals {
  let stoppingSince: number | undefined;
  const abort = new AbortController();
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stoppingSince === undefined) {
        stoppingSince = Date.now();
        resolve(signal);
        abort.abort();
      } else if (signal === 'SIGINT' && Date.now() - stoppingSince >= SECOND_CTRL_C_AFTER_MS) {
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return { stopped, signal: abort.signal };
}
