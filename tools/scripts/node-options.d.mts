/** The app's Node flags (package.json `janus.nodeOptions`) as one NODE_OPTIONS string ('' when none). */
export function nodeOptionsFor(app: string, root?: string): string;
/** The environment with the app's Node flags appended to NODE_OPTIONS. */
export function withNodeOptions<E extends Record<string, string | undefined>>(env: E, app: string, root?: string): E & { NODE_OPTIONS?: string };
