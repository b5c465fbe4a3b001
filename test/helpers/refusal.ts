/** The ContainaiError a promise is refused with; any other outcome fails the test with what really happened. */
import { ContainaiError } from '../../lib/errors.ts';

export async function refusal(promise: Promise<unknown>): Promise<ContainaiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ContainaiError) return err;
    throw err;
  }
  throw new Error('expected a refusal, and the promise resolved');
}
