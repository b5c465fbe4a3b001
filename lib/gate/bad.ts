/**
 * The bad list: versions that failed their health gate. install and update
 * refuse them until --force, naming when and why (the trap bootc users hit is
 * a timer re-applying the release that was just rolled back). A version is
 * added only once it is no longer current, and taken off when an operator
 * forces it back in, so current is never a version the list names.
 */
import { printableText } from '../text.ts';
import type { InstallLayout } from '../release/layout.ts';
import { type BadEntry, readBadList, writeBadList } from './state.ts';

export { readBadList, type BadEntry };

/** "failed its health gate at <when>: <why>", or undefined when the version is not on the list. */
export async function badReason(layout: InstallLayout, version: string): Promise<string | undefined> {
  const entry = (await readBadList(layout)).find((e) => e.version === version);
  return entry ? `${version} failed its health gate at ${entry.at}: ${printableText(entry.reason)}` : undefined;
}

/** Records a failed version (once: a second record of the same trial changes nothing). */
export async function addBadVersion(layout: InstallLayout, entry: BadEntry): Promise<void> {
  const list = await readBadList(layout);
  const existing = list.find((e) => e.version === entry.version);
  if (existing && existing.trialId === entry.trialId) return;
  await writeBadList(layout, [...list.filter((e) => e.version !== entry.version), entry]);
}

/** Takes a version off the list (an install --force of it); true when it was there. */
export async function forgetBadVersion(layout: InstallLayout, version: string): Promise<boolean> {
  const list = await readBadList(layout);
  if (!list.some((e) => e.version === version)) return false;
  await writeBadList(layout, list.filter((e) => e.version !== version));
  return true;
}
