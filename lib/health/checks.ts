/** Every check of the report, in the order it prints. */
import { channelCheck } from './channel.ts';
import { diskCheck } from './disk.ts';
import { engineSecurityCheck } from './engine-security.ts';
import { engineCheck } from './engine.ts';
import { gateCheck } from './gate.ts';
import { profileCheck } from './profile.ts';
import { registryCheck } from './registry.ts';
import { releaseCheck } from './release.ts';
import { trustCheck } from './trust.ts';
import type { HealthCheck } from './types.ts';

export const HEALTH_CHECKS: readonly HealthCheck[] = [engineCheck, engineSecurityCheck, releaseCheck, gateCheck, profileCheck, diskCheck, registryCheck, trustCheck, channelCheck];
