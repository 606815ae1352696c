/**
 * Runs an entry point (a `src/` program, or a test's child script) in a child process the way the
 * npm scripts do (through tsx).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export interface Run {
  /** With `processGroup`, also the id of the child's process group. */
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /**
   * Runs the child in a process group of its own (its pid is the group's id), so `kill(signal,
   * 'group')` signals it and everything it started, as a terminal's Ctrl-C does.
   */
  readonly processGroup?: boolean;
}

export type Kill = (signal: NodeJS.Signals, target?: 'process' | 'group') => void;

/** An `onOutput` that sends `signal` once, the first time stdout shows `text`. */
export function signalOnceWhen(
  text: string,
  signal: NodeJS.Signals,
  target: 'process' | 'group' = 'process',
): (stdout: string, kill: Kill) => void {
  let sent = false;
  return (stdout, kill) => {
    if (sent || !stdout.includes(text)) return;
    sent = true;
    kill(signal, target);
  };
}

/**
 * Runs an entry point as `npm` would (tsx), with only the environment given: the developer's own
 * TEMPORAL_* or STRIPE_* variables must not leak into the test. `onOutput` may signal the child.
 */
export function runEntryPoint(
  script: string,
  env: Record<string, string>,
  timeoutMs: number,
  onOutput?: (stdout: string, kill: Kill) => void,
  options: RunOptions = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.processGroup === true,
    });
    const { pid } = child; // undefined if the spawn failed ('error' below)
    const kill: Kill = (signal, target = 'process') => {
      if (target === 'process') child.kill(signal);
      else if (options.processGroup !== true) {
        throw new Error('kill(signal, "group") needs runEntryPoint(..., { processGroup: true })');
      } else if (pid !== undefined) process.kill(-pid, signal);
    };
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      kill('SIGKILL', options.processGroup === true ? 'group' : 'process');
      reject(
        new Error(`${script} did not exit within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`),
      );
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      onOutput?.(stdout, kill);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ pid, code, stdout, stderr });
    });
  });
}
