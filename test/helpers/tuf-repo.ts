/**
 * A real TUF repository for tests, built with @tufjs/models (the models tuf-js
 * itself verifies with) and served on 127.0.0.1 the way Sigstore's CDN lays
 * it out: consistent snapshots, so /<v>.root.json, /timestamp.json,
 * /<v>.snapshot.json, /<v>.targets.json and /targets/<sha256>.<name>.
 *
 * Every role signs with its own Ed25519 key; the root role can be rotated to
 * new keys and a higher threshold, and each publish step can be bent (an
 * expired timestamp, a timestamp naming an older snapshot, a target served
 * with other bytes than its signed hash) to play the attacks TUF refuses.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Key, Metadata, MetaFile, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import { Role } from '@tufjs/models/dist/role.js';

const DAY_MS = 86_400_000;
const SPEC = '1.0.31';

export interface TufKey {
  id: string;
  key: Key;
  privateKey: KeyObject;
}

export function tufKey(): TufKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const id = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  return { id, privateKey, key: new Key({ keyID: id, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: pem } }) };
}

function signWith(metadata: Metadata<Root | Timestamp | Snapshot | Targets>, keys: TufKey[]): Buffer {
  for (const k of keys) {
    metadata.sign((data) => new Signature({ keyID: k.id, sig: sign(null, data, k.privateKey).toString('hex') }), true);
  }
  return Buffer.from(JSON.stringify(metadata.toJSON()));
}

const expiresIn = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface PublishOptions {
  /** The target's bytes as signed in targets.json. */
  target: Buffer;
  /** Served instead of the signed bytes (a target whose hash differs). */
  servedTarget?: Buffer;
  /** Days until the timestamp expires (negative: already expired, a freeze). */
  timestampDays?: number;
  /** Have the timestamp name this snapshot version instead of the new one (a rollback). */
  snapshotVersion?: number;
}

export class TufRepo {
  readonly roots = new Map<number, Buffer>();
  readonly files = new Map<string, Buffer>();
  rootKeys: TufKey[] = [tufKey()];
  rootThreshold = 1;
  readonly timestampKey = tufKey();
  readonly snapshotKey = tufKey();
  readonly targetsKey = tufKey();
  rootVersion = 0;
  timestampVersion = 0;
  snapshotVersion = 0;
  targetsVersion = 0;
  private server?: Server;
  url = '';

  constructor() {
    this.rotateRoot({ keys: this.rootKeys, threshold: 1, signWith: this.rootKeys });
  }

  /** The first root.json: what a client is given to start the chain from. */
  get initialRoot(): Buffer {
    return this.roots.get(1) as Buffer;
  }

  /** Publishes root v(n+1) with these root keys and threshold, signed by signWith (old and new keys, as TUF wants). */
  rotateRoot(options: { keys: TufKey[]; threshold: number; signWith: TufKey[] }): Buffer {
    const role = (keys: TufKey[], threshold = 1) => new Role({ keyIDs: keys.map((k) => k.id), threshold });
    const all = [...options.keys, this.timestampKey, this.snapshotKey, this.targetsKey];
    const root = new Root({
      version: this.rootVersion + 1,
      specVersion: SPEC,
      expires: expiresIn(365),
      consistentSnapshot: true,
      keys: Object.fromEntries(all.map((k) => [k.id, k.key])),
      roles: {
        root: role(options.keys, options.threshold),
        timestamp: role([this.timestampKey]),
        snapshot: role([this.snapshotKey]),
        targets: role([this.targetsKey]),
      },
    });
    const bytes = signWith(new Metadata(root), options.signWith);
    this.rootVersion += 1;
    this.roots.set(this.rootVersion, bytes);
    this.files.set(`/${this.rootVersion}.root.json`, bytes);
    this.rootKeys = options.keys;
    this.rootThreshold = options.threshold;
    return bytes;
  }

  /** Publishes a target (targets, snapshot and timestamp, each one version up). */
  publish(options: PublishOptions): void {
    const name = 'trusted_root.json';
    this.targetsVersion += 1;
    const targets = new Targets({ version: this.targetsVersion, specVersion: SPEC, expires: expiresIn(180) });
    targets.addTarget(new TargetFile({ path: name, length: options.target.length, hashes: { sha256: sha256(options.target) } }));
    const targetsBytes = signWith(new Metadata(targets), [this.targetsKey]);
    this.files.set(`/${this.targetsVersion}.targets.json`, targetsBytes);
    this.files.set(`/targets/${sha256(options.target)}.${name}`, options.servedTarget ?? options.target);

    this.snapshotVersion += 1;
    const snapshot = new Snapshot({
      version: this.snapshotVersion,
      specVersion: SPEC,
      expires: expiresIn(30),
      meta: { 'targets.json': new MetaFile({ version: this.targetsVersion }) },
    });
    const snapshotBytes = signWith(new Metadata(snapshot), [this.snapshotKey]);
    this.files.set(`/${this.snapshotVersion}.snapshot.json`, snapshotBytes);
    this.publishTimestamp({ days: options.timestampDays, snapshotVersion: options.snapshotVersion });
  }

  /** A new timestamp over a snapshot (default: the newest). */
  publishTimestamp(options: { days?: number; snapshotVersion?: number } = {}): void {
    this.timestampVersion += 1;
    const timestamp = new Timestamp({
      version: this.timestampVersion,
      specVersion: SPEC,
      expires: expiresIn(options.days ?? 7),
      snapshotMeta: new MetaFile({ version: options.snapshotVersion ?? this.snapshotVersion }),
    });
    this.files.set('/timestamp.json', signWith(new Metadata(timestamp), [this.timestampKey]));
  }

  async serve(): Promise<string> {
    this.server = createServer((req, res) => {
      const body = this.files.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (!body) {
        res.writeHead(404);
        res.end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    const server = this.server;
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

