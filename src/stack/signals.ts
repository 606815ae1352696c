/**
 * How `npm start` and `npm run demo` hear that they should stop: SIGINT (Ctrl-C) or SIGTERM, once,
 * however many copies of it arrive; a real second Ctrl-C means "now".
 */

/** A SIGINT this long after the one that started the shutdown is a second Ctrl-C, not a copy. */
const SECOND_CTRL_C_AFTER_MS = 1_000;

/**
 * Resolves with the first SIGINT or SIGTERM. The listeners stay for the life of the process, so a
 * repeat never meets Node's default action (exit at once). A second Ctrl-C while draining means
 * "now"; but one Ctrl-C often arrives more than once within milliseconds (the terminal signals the
 * whole process group, and npm and tsx forward it to their child as well), so only a SIGINT at
 * least a second after the shutdown began counts as a second one. Repeated SIGTERMs are ignored.
 */
export function stopSignals(): Promise<NodeJS.Signals> {
  let stoppingSince: number | undefined;
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stoppingSince === undefined) {
        stoppingSince = Date.now();
        resolve(signal);
      } else if (signal === 'SIGINT' && Date.now() - stoppingSince >= SECOND_CTRL_C_AFTER_MS) {
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
