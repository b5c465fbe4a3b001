/**
 * A decision of the gate in a process of its own, for the kill test
 * (test/unit/gate-kill.test.ts): loads everything, says "ready", waits for a
 * line on stdin, then advances the trial (or fails it by hand) and says
 * "done <status>". The parent SIGKILLs it at a random moment after "go".
 *
 *   bun test/helpers/gate-child.ts ROOT advance|fail-by-hand OPERATOR_DIR
 */
import { advanceTrial, endTrialByHand, type GateDeps } from '../../lib/gate/trial.ts';
import { installLayout } from '../../lib/release/layout.ts';

// Loaded now, so the moments after "go" are the decision's, not module loading's.
await import('../../lib/release/verify-installed.ts');
await import('../../lib/release/record-policy.ts');

const [root, mode, operatorDir] = process.argv.slice(2) as [string, string, string];
const deps: GateDeps = { by: 'killed child', healthChecks: [], operatorDir };
process.stdout.write('ready\n');
for await (const _ of process.stdin) break;
const layout = installLayout(root);
const r = mode === 'fail-by-hand' ? await endTrialByHand(layout, 'fail', 'kill test', deps) : await advanceTrial(layout, deps);
process.stdout.write(`done ${r.status}\n`);
process.exit(0);
