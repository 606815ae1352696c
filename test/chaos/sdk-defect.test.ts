import assert from 'node:assert/strict';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import {
  STUCK_TASK_ATTEMPTS,
  firstWorkflowTaskCompleted,
  otherNondeterminism,
  resetIfStuckOnSdkDefect,
  sdkUpdateReplayDefect,
  stuckOnOtherNondeterminism,
} from '../../src/chaos/sdk-defect';
import { whyStillOpen } from '../../src/chaos/harness';
import { testTemporal, uniqueName } from '../support/temporal';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const { WorkflowTaskFailedCause } = temporal.api.enums.v1;

const UPDATE_MACHINE =
  '[TMPRL1100] Nondeterminism error: Update machine does not handle this event: HistoryEvent(id: 21, UpsertWorkflowSearchAttributes)';
const OUR_NONDETERMINISM =
  "[TMPRL1100] Nondeterminism error: Activity type of scheduled event 'createPaymentIntent' does not match activity type of activity command 'confirmPaymentIntent'";

let nextId = 1;
/** A history event as the server sends it (`fromObject` makes the 64-bit event id). */
const event = (attributes: Record<string, unknown>): HistoryEvent =>
  temporal.api.history.v1.HistoryEvent.fromObject({ eventId: nextId++, ...attributes });
const started = (): HistoryEvent => event({ workflowExecutionStartedEventAttributes: {} });
const completed = (): HistoryEvent => event({ workflowTaskCompletedEventAttributes: {} });
const activity = (): HistoryEvent => event({ activityTaskCompletedEventAttributes: {} });
const failed = (
  message: string,
  cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR,
): HistoryEvent => event({ workflowTaskFailedEventAttributes: { cause, failure: { message } } });

describe('the chaos harness reset for the SDK update-replay defect', function () {
  this.timeout(180_000);

  describe('telling the defect from other workflow-task failures', () => {
    it("finds the SDK core's update-machine nondeterminism in the last workflow task", () => {
      assert.equal(
        sdkUpdateReplayDefect([started(), completed(), activity(), failed(UPDATE_MACHINE)]),
        UPDATE_MACHINE,
      );
    });

    it("finds the server's refusal of an update answer by its cause, whatever the message says", () => {
      const refusal = failed(
        'received *update.Rejection message while in state Completed',
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
      );
      assert.equal(
        sdkUpdateReplayDefect([started(), completed(), refusal]),
        'received *update.Rejection message while in state Completed',
      );
    });

    it('leaves any other nondeterminism, and a failure a later task recovered from, alone', () => {
      assert.equal(sdkUpdateReplayDefect([started(), completed(), failed(OUR_NONDETERMINISM)]), undefined);
      assert.equal(
        sdkUpdateReplayDefect([started(), completed(), failed(UPDATE_MACHINE), completed()]),
        undefined,
      );
      assert.equal(sdkUpdateReplayDefect([started(), completed(), activity()]), undefined);
    });

    it('tells our own nondeterminism, which no retry passes, from the defect and from other failures', () => {
      assert.equal(
        otherNondeterminism([started(), completed(), failed(OUR_NONDETERMINISM)]),
        OUR_NONDETERMINISM,
      );
      // By its cause, whatever the message says.
      assert.equal(otherNondeterminism([started(), completed(), failed('changed')]), 'changed');
      // The defect's signature is the reset's, not this.
      assert.equal(otherNondeterminism([started(), completed(), failed(UPDATE_MACHINE)]), undefined);
      // A workflow that threw (not nondeterminism), and a failure a later task recovered from.
      const threw = failed(
        'oops',
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
      );
      assert.equal(otherNondeterminism([started(), completed(), threw]), undefined);
      assert.equal(
        otherNondeterminism([started(), completed(), failed(OUR_NONDETERMINISM), completed()]),
        undefined,
      );
    });

    it('resets to the first completed workflow task, as --type FirstWorkflowTask does', () => {
      const first = completed();
      assert.equal(firstWorkflowTaskCompleted([started(), first, activity(), completed()]), first.eventId);
      assert.equal(firstWorkflowTaskCompleted([started()]), undefined);
    });
  });

  describe('on the dev server', () => {
    let client: Client;
    let connection: Connection;
    let nativeConnection: NativeConnection;
    before(async () => {
      const server = await testTemporal();
      connection = await Connection.connect({ address: server.address });
      client = new Client({ connection, namespace: server.namespace });
      nativeConnection = await NativeConnection.connect({ address: server.address });
    });
    after(async () => {
      await nativeConnection?.close();
      await connection?.close();
    });

    /** Runs `body` with a worker for the stand-in workflow on a task queue of its own. */
    async function withStuckWorkflow<T>(
      title: string,
      message: string,
      body: (handle: WorkflowHandle) => Promise<T>,
    ): Promise<T> {
      const taskQueue = uniqueName(title);
      const worker = await Worker.create({
        connection: nativeConnection,
        taskQueue,
        workflowsPath: require.resolve('./stuck-workflow'),
        activities: { step: async () => {} },
      });
      return worker.runUntil(async () => {
        await client.workflow.start('failsItsTaskUntilReset', {
          taskQueue,
          workflowId: taskQueue,
          args: [message],
        });
        // No run id, as the harness's `getCheckoutHandle`: it follows the workflow to its reset run.
        const handle = client.workflow.getHandle(taskQueue);
        // Stuck: the same workflow task has failed at least STUCK_TASK_ATTEMPTS times.
        for (const until = Date.now() + 90_000; ;) {
          const d = await handle.describe();
          if ((d.raw.pendingWorkflowTask?.attempt ?? 0) >= STUCK_TASK_ATTEMPTS) break;
          assert.ok(Date.now() < until, `the workflow task did not fail ${STUCK_TASK_ATTEMPTS} times`);
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        return body(handle);
      });
    }

    it('resets a checkout stuck with the signature once, and the reset run completes', async function () {
      await withStuckWorkflow(this.test?.title ?? 'reset', UPDATE_MACHINE, async (handle) => {
        const reset = await resetIfStuckOnSdkDefect(
          handle,
          'test: runbook reset',
          `${handle.workflowId}-reset`,
        );
        assert.ok(reset, 'the stuck workflow was reset');
        assert.equal(reset.failure, UPDATE_MACHINE);
        assert.notEqual(reset.newRunId, reset.oldRunId);
        assert.equal(await handle.result(), 'completed after the reset');
        assert.equal((await handle.describe()).runId, reset.newRunId);
        // Completed now: nothing more to do.
        assert.equal(
          await resetIfStuckOnSdkDefect(handle, 'test: again', `${handle.workflowId}-again`),
          undefined,
        );
      });
    });

    it("names what a stuck workflow waits on, for the chaos run's not-final finding", async function () {
      await withStuckWorkflow(this.test?.title ?? 'why', OUR_NONDETERMINISM, async (handle) => {
        const why = await whyStillOpen(handle);
        assert.match(why, /^workflow task pending, attempt \d+;/);
        assert.ok(why.includes(`last workflow task failure: `), why);
        assert.ok(why.includes(OUR_NONDETERMINISM.slice(0, 40)), why);
        assert.match(why, /\d+ events, the last: .*EVENT_TYPE_WORKFLOW_TASK_(FAILED|SCHEDULED|STARTED)/);
        await handle.terminate('test over');
      });
    });

    it('says a workflow stuck on our own nondeterminism is stuck, so the run does not wait for it', async function () {
      await withStuckWorkflow(this.test?.title ?? 'ours', OUR_NONDETERMINISM, async (handle) => {
        assert.equal(await stuckOnOtherNondeterminism(handle), OUR_NONDETERMINISM);
        await handle.terminate('test over');
        assert.equal(await stuckOnOtherNondeterminism(handle), undefined, 'a closed run is not stuck');
      });
      await withStuckWorkflow(this.test?.title ?? 'defect', UPDATE_MACHINE, async (handle) => {
        assert.equal(await stuckOnOtherNondeterminism(handle), undefined, "the defect's is the reset's");
        await handle.terminate('test over');
      });
    });

    it('leaves a workflow stuck on any other failure as it is', async function () {
      await withStuckWorkflow(this.test?.title ?? 'other', OUR_NONDETERMINISM, async (handle) => {
        const before = await handle.describe();
        assert.equal(
          await resetIfStuckOnSdkDefect(handle, 'test: must not reset', `${handle.workflowId}-reset`),
          undefined,
        );
        const after = await handle.describe();
        assert.equal(after.runId, before.runId);
        assert.equal(after.status.name, 'RUNNING');
        await handle.terminate('test over');
      });
    });
  });
});
