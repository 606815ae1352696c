/**
 * Worker processes for the chaos run: each slot runs `src/worker.ts` (or the broken variant's
 * worker) as its own Node process, so a SIGKILL takes a whole worker down mid-activity exactly as a
 * crashed host would. A slot that dies without being told to is restarted and counted, so the run
 * keeps its worker count and the report shows the unplanned exits.
 *
 * Children get an explicit environment (only the variables the worker's config reads), so the run
 * never depends on, or leaks, the caller's environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';

export interface WorkerPoolOptions {
  /** Absolute path of the worker entry point (a TypeScript file run through tsx). */
  readonly entry: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly slots: number;
  /** Each slot's stdout and stderr are appended to `<logDir>/worker-<slot>.log`. */
  readonly logDir: string;
  readonly readyTimeoutMs: number;
}

interface Slot {
  child: ChildProcess | undefined;
  log: WriteStream;
}

const READY_LINE = 'checkout worker polling';
const TAIL_CHARS = 2_000;
const REPO_ROOT = path.resolve(__dirname, '..', '..');

export class WorkerPool {
  private readonly slots: Slot[];
  private stopping = false;
  private readonly pending = new Set<Promise<void>>();
  /** Children we told to exit (SIGKILL on schedule, or stopping): their exit is not a crash. */
  private readonly expected = new WeakSet<ChildProcess>();
  private readonly alive = new Set<ChildProcess>();
  starts = 0;
  sigkills = 0;
  unexpectedExits = 0;

  constructor(private readonly options: WorkerPoolOptions) {
    this.slots = Array.from({ length: options.slots }, (_, i) => ({
      child: undefined,
      log: createWriteStream(path.join(options.logDir, `worker-${i}.log`), { flags: 'a' }),
    }));
  }

  /** Starts every slot and resolves once each worker polls its task queue. */
  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.start(i)));
  }

  /** Starts slot `i` and resolves once its worker polls (or rejects after `readyTimeoutMs`). */
  start(i: number): Promise<void> {
    const slot = this.slotAt(i);
    // One process per slot: a crash restart and a scheduled restart may both ask for this slot.
    if (this.stopping || (slot.child && slot.child.exitCode === null && slot.child.signalCode === null)) {
      return Promise.resolve();
    }
    const child = spawn(process.execPath, ['--import', 'tsx', this.options.entry, ...this.options.args], {
      cwd: REPO_ROOT,
      env: { ...this.options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.starts += 1;
    this.alive.add(child);
    child.once('exit', () => this.alive.delete(child));
    slot.child = child;
    slot.log.write(`--- start ${new Date().toISOString()} pid ${String(child.pid)}\n`);
    const ready = new Promise<void>((resolve, reject) => {
      let seen = '';
      // The last of the child's output, both streams, for the error when it dies before polling
      // (its log file is in the run's temporary directory, which is gone once the run ends).
      let tail = '';
      const keep = (chunk: Buffer): void => {
        if (seen !== 'ready') tail = (tail + chunk.toString('utf8')).slice(-TAIL_CHARS);
      };
      const timer = setTimeout(() => {
        reject(new Error(`worker ${i} did not start polling within ${this.options.readyTimeoutMs} ms`));
      }, this.options.readyTimeoutMs);
      child.stdout?.on('data', (chunk: Buffer) => {
        slot.log.write(chunk);
        keep(chunk);
        if (seen !== 'ready') {
          seen = (seen + chunk.toString('utf8')).slice(-4_096);
          if (seen.includes(READY_LINE)) {
            seen = 'ready';
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        slot.log.write(chunk);
        keep(chunk);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        slot.log.write(`--- exit code ${String(code)} signal ${String(signal)}\n`);
        if (slot.child === child) slot.child = undefined;
        if (seen !== 'ready')
          reject(
            new Error(
              `worker ${i} exited (code ${code}, signal ${signal}) before polling; its last output:\n${tail}`,
            ),
          );
        if (!this.expected.has(child) && !this.stopping) {
          this.unexpectedExits += 1;
          this.track(
            this.delay(1_000).then(() => this.start(i)),
            slot,
          );
        }
      });
    });
    return ready;
  }

  /**
   * SIGKILLs the worker in slot `preferred`, or, when that slot is down already (a kill or a crash
   * moments ago), the next slot with a live worker, so every scheduled kill takes a process down.
   * The slot gets a fresh worker after `downMs`. Returns false when no worker was alive.
   */
  killAndRestart(preferred: number, downMs: number): boolean {
    for (let k = 0; k < this.slots.length; k++) {
      const i = (preferred + k) % this.slots.length;
      const slot = this.slotAt(i);
      const child = slot.child;
      if (!child || child.exitCode !== null || child.signalCode !== null || this.expected.has(child))
        continue;
      this.expected.add(child);
      child.kill('SIGKILL');
      this.sigkills += 1;
      this.track(
        this.delay(downMs).then(() => this.start(i)),
        slot,
      );
      return true;
    }
    return false;
  }

  /** SIGTERM every worker (graceful drain), SIGKILL after `graceMs`, and wait for them to exit. */
  async stopAll(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.pending]);
    await Promise.all(
      [...this.alive].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        this.expected.add(child);
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    await Promise.all(
      this.slots.map((slot) => new Promise<void>((resolve) => slot.log.end(() => resolve()))),
    );
  }

  private track(p: Promise<void>, slot: Slot): void {
    const tracked = p.catch((err: unknown) => {
      // The exit handler restarts a worker that died before polling; this only records it.
      slot.log.write(`--- restart failed: ${err instanceof Error ? err.message : String(err)}\n`);
    });
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private slotAt(i: number): Slot {
    const slot = this.slots[i];
    if (!slot) throw new Error(`no worker slot ${i}`);
    return slot;
  }
}
