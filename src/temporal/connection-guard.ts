/**
 * The Temporal client's gRPC interceptors, made safe to close under a call that is still retrying.
 *
 * The client's retry interceptor schedules each retry with `setTimeout`, and `Connection.close()`
 * does not clear those timers. A call that failed with a retryable status (Temporal just went away,
 * which is exactly when a stack shuts down: a terminal's Ctrl-C stops the dev server too) and whose
 * connection is then closed makes its next attempt on the closed channel, and grpc-js throws
 * `Channel has been shut down` synchronously inside that timer: an uncaught exception that kills the
 * process in the middle of its shutdown.
 *
 * So below the retry interceptor sits one more: it creates the call as usual, and if the channel
 * refuses because it was closed, returns a call that ends at once with CANCELLED instead. CANCELLED
 * is not retried, so the caller's promise rejects with that status and nothing is left scheduled.
 * A call first made after the close rejects the same way. Any other error from creating a call is
 * thrown as before.
 */
import {
  InterceptingCall,
  Metadata,
  status,
  type Interceptor,
  type InterceptingListener,
} from '@grpc/grpc-js';
import { defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';

const CHANNEL_SHUT_DOWN = 'Channel has been shut down';

/** What an interceptor's call wraps (grpc-js does not export the interface by name). */
type Call = ConstructorParameters<typeof InterceptingCall>[0];

/** A call that never reaches a channel: it reports CANCELLED to whoever starts it. */
function closedChannelCall(): Call {
  let ended = false;
  const end = (listener: Partial<InterceptingListener> | undefined): void => {
    if (ended) return;
    ended = true;
    // The retry interceptor forwards its last message through the `next` it saved when a message
    // arrived; a first attempt that ends here with no message would leave that unset and throw a
    // TypeError there. So it gets an empty message first; with a status other than OK the client
    // rejects with the status and drops the message (the test checks both paths).
    listener?.onReceiveMessage?.(undefined);
    listener?.onReceiveStatus?.({
      code: status.CANCELLED,
      details: `${CHANNEL_SHUT_DOWN}: the Temporal connection was closed before this call could be retried`,
      metadata: new Metadata(),
    });
  };
  return {
    cancelWithStatus: () => {},
    getPeer: () => '',
    start: (_metadata: Metadata, listener?: Partial<InterceptingListener>) => {
      // As a real call would: the status arrives after start() has returned.
      process.nextTick(() => end(listener));
    },
    sendMessageWithContext: () => {},
    sendMessage: () => {},
    startRead: () => {},
    halfClose: () => {},
    getAuthContext: () => null,
  };
}

/** Passes every call through; a call the closed channel refuses ends as CANCELLED (see above). */
export const closedChannelGuard: Interceptor = (options, nextCall) => {
  try {
    return new InterceptingCall(nextCall(options));
  } catch (err) {
    if (!(err instanceof Error && err.message === CHANNEL_SHUT_DOWN)) throw err;
    return new InterceptingCall(closedChannelCall());
  }
};

/** The client's default retrying, then the guard: for `ConnectionOptions.interceptors`. */
export function closeSafeInterceptors(): Interceptor[] {
  return [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), closedChannelGuard];
}
