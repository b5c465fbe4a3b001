/** The version stamped into the binary by scripts/build.ts (`--define`); "dev" when run from source. */
declare const __CONTAINAI_VERSION__: string | undefined;

export const VERSION: string = typeof __CONTAINAI_VERSION__ === 'string' ? __CONTAINAI_VERSION__ : 'dev';
