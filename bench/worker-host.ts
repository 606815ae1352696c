/**
 * The parent's side of a benchmark worker process (`worker-process.ts`): fork it, wait until it
 * polls, ask for its memory, stop it. Each worker runs in its own process so its RSS and heap are
 * its own and not mixed with the benchmark's client, the Stripe server or another worker.
 */
import { fork, type ChildProcess } from 'node:child_process';

export interface WorkerTuning {
  readonly maxConcurrentWorkflowTaskExecutions: number;
  readonly maxConcurrentActivityTaskExecutions: number;
  readonly workflowThreadPoolSize: number;
}

export interface BenchWorkerSpec {
  /** `checkout`: the product's worker (`createCheckoutWorker`); `floor`: no-op activities. */
  readonly kind: 'checkout' | 'floor';
  readonly address: string;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly stripeUrl: string;
  readonly stripeSecretKey: string;
  readonly provisioningPath: string;
  readonly tuning: WorkerTuning;
  readonly identity: string;
}

export interface MemorySample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Highest values sampled (every 50 ms) since the last reset. */
  readonly peakRssBytes: number;
  readonly peakHeapUsedBytes: number;
  /** CPU time (user + system) this process has used since it started. */
  readonly cpuMs: number;
}

export type ToWorker =
  { readonly type: 'memory'; readonly reset: boolean; readonly gc: boolean } | { readonly type: 'stop' };

export type FromWorker =
  | { readonly type: 'ready'; readonly maxCachedWorkflows: number }
  | ({ readonly type: 'memory' } & MemorySample)
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

export interface BenchWorker {
  readonly spec: BenchWorkerSpec;
  readonly pid: number;
  /** The workflow cache size the SDK chose (or was given) for this worker. */
  readonly maxCachedWorkflows: number;
  /** Current and peak memory; `reset` starts a new peak window, `gc` collects first. */
  memory(opts?: { reset?: boolean; gc?: boolean }): Promise<MemorySample>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 120_000;

export async function startBenchWorker(spec: BenchWorkerSpec): Promise<BenchWorker> {
  const child: ChildProcess = fork(require.resolve('./worker-process'), [JSON.stringify(spec)], {
    // BENCH_WORKER_CPU_PROF=<dir> writes a V8 CPU profile of each worker process there (docs/benchmarks.md).
    execArgv: [
      '--require',
      require.resolve('tsx/cjs'),
      '--expose-gc',
      ...(process.env.BENCH_WORKER_CPU_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_WORKER_CPU_PROF}`]
        : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waiters: ((m: FromWorker) => void)[] = [];
  let failure: string | undefined;
  child.on('message', (message: FromWorker) => {
    if (message.type === 'failed') failure = message.message;
    waiters.shift()?.(message);
  });
  const next = (what: string, timeoutMs: number): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${spec.identity}: no ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${spec.identity} exited (code ${String(code)})${failure ? `: ${failure}` : ''}`));
      });
    });

  const ready = await next('ready message', READY_TIMEOUT_MS);
  if (ready.type !== 'ready') {
    child.kill('SIGKILL');
    throw new Error(
      `${spec.identity} failed to start: ${ready.type === 'failed' ? ready.message : ready.type}`,
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    spec,
    pid: child.pid ?? -1,
    maxCachedWorkflows: ready.maxCachedWorkflows,
    async memory(opts = {}) {
      const answer = next('memory sample', 30_000);
      const request: ToWorker = { type: 'memory', reset: opts.reset ?? false, gc: opts.gc ?? false };
      child.send(request);
      const m = await answer;
      if (m.type !== 'memory') throw new Error(`${spec.identity} answered ${m.type} to a memory request`);
      return m;
    },
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null) return;
        const request: ToWorker = { type: 'stop' };
        child.send(request);
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
