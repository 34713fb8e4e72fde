/** Bundles one entry point the way the image runs it (`outfile` inside the checkout whose node_modules it uses). */
export function bundle(entry: string, outfile: string): Promise<void>;
/** Builds the apps of `checkout` into `<checkout>/<outDir>/<app>/main.js`, migrations beside them; returns that directory. */
export function buildApps(checkout?: string, apps?: readonly string[], outDir?: string): Promise<string>;
