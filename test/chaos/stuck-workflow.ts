/**
 * A workflow whose task fails on every attempt with a message of the caller's choosing, until it is
 * reset: test/chaos/sdk-defect.test.ts stands it in for a checkout stuck on the SDK's update-replay
 * defect (a plain `Error` from workflow code fails the workflow task, not the workflow, and the
 * task is retried). A reset run has a new run id, and completes.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';

const { step } = proxyActivities<{ step(): Promise<void> }>({ startToCloseTimeout: '10 seconds' });

export async function failsItsTaskUntilReset(message: string): Promise<string> {
  await step();
  const info = workflowInfo();
  if (info.runId === info.firstExecutionRunId) throw new Error(message);
  return 'completed after the reset';
}
